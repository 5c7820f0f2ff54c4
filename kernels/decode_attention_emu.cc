// decode_attention.cu compiled by the host C++ compiler as a CPU emulation
// (cpu_emulation.h): the same kernels, run thread by thread, for
// //kernels:emulation_test on machines without a GPU.
#define KNLP_CPU_EMULATION 1
#include "kernels/decode_attention.cu"
