#include <iostream>
int main() { std::cout << "mixq\n"; }
