/* Test harness for Wine 8 only; never shipped (every Windows since 8 has the real one). Rust's
 * standard library (safetensors) takes its random numbers from ProcessPrng, which Wine 8 lacks. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size) {
    return BCryptGenRandom(NULL, data, (ULONG)size, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
