// The QDQ form of a quantized model, as an IR graph: every quantized weight becomes integer codes
// + DequantizeLinear, every quantized activation tensor gets [Clip ->] QuantizeLinear ->
// DequantizeLinear in front of the layers that read it (other readers keep the float tensor).
// The simulation runs this graph on the executor, and the exporter serializes the same graph, so
// what mixq measures is what ONNX Runtime runs.
#pragma once

#include <map>
#include <string>

#include "graph/ir.h"
#include "quant/qmodel.h"

namespace mixq {

// The QDQ form of a quantized model, as an IR graph (no protobuf involved; what quant/qdq.h's
// qdq_graph describes). Default-domain opset raised to 13 when lower; the ops whose signature or
// meaning changed are rewritten (Slice/TopK < 10, Pad/Clip < 11, Dropout < 12 -> Identity,
// Squeeze/Unsqueeze/ReduceSum/Split < 13: attributes become inputs; Softmax/LogSoftmax/Hardmax
// < 13 -> Shape/Flatten/op(axis=-1)/Reshape unless the axis is known to be the last; drops
// 'consumed_inputs'/'is_test'/'spatial=1') or refused (Upsample, Resize < 11, BN spatial=0).
// Opset > 17 is refused.
//  * Weight w of layer L, bits 2..8: initializers w_quantized (codes as int8 when symmetric,
//    uint8 when asymmetric; values stay in the b-bit range), w_scale (float32), w_zero_point
//    (int8/uint8) -> DequantizeLinear -> w_dq, which L reads instead of w (other readers of w
//    keep the float tensor). Per-tensor: scalar scale/zero point. Per-channel: 1-D [C] with
//    `axis` = scheme.axis.
//    Per-group (DequantizeLinear-13 has no blocked scales): on the 2-D view W2 [C, K] of
//    quant/qscheme.h (channel axis moved first, the other axes flattened in order), K is padded
//    with the group's zero point up to G * group_size (G = ceil(K / group_size)) and the codes
//    are stored as [C*G, group_size]: one row per (channel, group), dequantized per channel along
//    axis 0 with the C*G parameters (scheme.h's row-major [C, G]); then Reshape [C, G*group_size]
//    -> Slice to K (only when padded) -> Reshape to W's permuted shape -> Transpose back (only
//    when the channel axis is not 0). Unpadded with axis 0 it is a single Reshape to W's shape.
//    Bits 16: opset 13 has no int16 QuantizeLinear: the dequantized float weight s*(q - z) is
//    stored as initializer w_dequantized instead.
//    Weights that are not float32 get a Cast back to their dtype after dequantization.
//  * Embedding table under a row-wise scheme (QuantizedWeight::embed): rowwise / rowwise-greedy:
//    w_quantized uint8 [R, D] -> DequantizeLinear(w_scale [R], zero point 0, axis 0) -> Add
//    (w_offset [R, 1]); codebook: GatherElements(w_codebook [R, 2^b], w_codes int64, axis 1).
//    Both compute exactly quant/rowwise_ref.h's values.
//  * Activation T (per-tensor), bits 2..8: T -> [Clip(s*(qmin-z), s*(qmax-z)) when bits < 8, so
//    saturation happens at the b-bit limits] -> QuantizeLinear(T_scale, T_zero_point uint8/int8)
//    -> DequantizeLinear -> T_dq. Bits 16: the same arithmetic in float ops (Div, Round,
//    Clip(qmin - z, qmax - z), Mul). Every quantized layer (a node named in qm.weights) that
//    reads T reads T_dq instead; other readers keep T, and graph outputs are never quantized.
//    The chain is placed right after T's producer; an activation that no quantized layer reads
//    gets no nodes.
//  * metadata_props keep the source's and add mixq.quantized = "qdq".
// Throws kInvalidArgument when qm names a node/weight/tensor the graph lacks or codes lie outside
// the scheme's range.
// SPARQ activations (QuantizedActivation::sparq) get plain QDQ here: QDQ cannot express SPARQ.
// The simulation adds it with a hook on T_dq (quant/sparq_apply.h); exporters must refuse such a
// model (check_no_sparq). `dq_names` (optional) receives T -> the name of its T_dq value.
Graph qdq_graph(const QuantizedModel& qm, std::map<std::string, std::string>* dq_names = nullptr);

}  // namespace mixq
