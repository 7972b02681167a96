/* Test harness for Wine 8 only; never shipped. Wine 8's ucrtbase lacks the C99 complex functions
 * (crealf and friends) that numpy's extension modules import from api-ms-win-crt-math-l1-1-0.dll.
 * scripts/windows/patch_imports.py points those modules, in a test copy, at this DLL instead,
 * whose .def (made by make_crtmath_def.py) forwards every other function to Wine's ucrtbase.
 *
 * MSVC's complex types are structs: _Fcomplex (8 bytes) travels in a register, _Dcomplex and
 * _Lcomplex (16 bytes; MSVC's long double is a double) by reference; the same struct types
 * compiled by mingw-w64 follow the same Windows x64 convention. */
#include <complex.h>
#include <math.h>

typedef struct { float _Val[2]; } Fc;
typedef struct { double _Val[2]; } Dc;
struct xy { double x, y; };

static double _Complex d(Dc z) { return z._Val[0] + z._Val[1] * I; }
static float _Complex f(Fc z) { return z._Val[0] + z._Val[1] * I; }
static Dc D(double _Complex z) { Dc r = {{creal(z), cimag(z)}}; return r; }
static Fc F(float _Complex z) { Fc r = {{crealf(z), cimagf(z)}}; return r; }

#define DUAL(name)                                                   \
    Dc shim_##name(Dc z) { return D(name(d(z))); }                   \
    Fc shim_##name##f(Fc z) { return F(name##f(f(z))); }             \
    Dc shim_##name##l(Dc z) { return D(name(d(z))); }

DUAL(ccos) DUAL(ccosh) DUAL(cexp) DUAL(csin) DUAL(csinh) DUAL(ctan) DUAL(ctanh)
DUAL(cacos) DUAL(cacosh) DUAL(casin) DUAL(casinh) DUAL(catan) DUAL(catanh) DUAL(clog) DUAL(csqrt) DUAL(cproj)
DUAL(conj)

double shim_creal(Dc z) { return z._Val[0]; }
float shim_crealf(Fc z) { return z._Val[0]; }
double shim_creall(Dc z) { return z._Val[0]; }
double shim_cimag(Dc z) { return z._Val[1]; }
float shim_cimagf(Fc z) { return z._Val[1]; }
double shim_cimagl(Dc z) { return z._Val[1]; }
double shim_cabs(Dc z) { return cabs(d(z)); }
float shim_cabsf(Fc z) { return cabsf(f(z)); }
double shim_cabsl(Dc z) { return cabs(d(z)); }
double shim_carg(Dc z) { return carg(d(z)); }
float shim_cargf(Fc z) { return cargf(f(z)); }
double shim_cargl(Dc z) { return carg(d(z)); }
Dc shim_cpow(Dc a, Dc b) { return D(cpow(d(a), d(b))); }
Fc shim_cpowf(Fc a, Fc b) { return F(cpowf(f(a), f(b))); }
Dc shim_cpowl(Dc a, Dc b) { return D(cpow(d(a), d(b))); }
double shim__cabs(struct xy z) { return hypot(z.x, z.y); }
