/* Test harness for Wine 8 only; never shipped (Windows 10 and later have icuuc.dll). Qt Core
 * imports ICU's converters for legacy text codecs; Wine 8 has no ICU. These stand-ins say that no
 * converter is available, which Qt handles (the app uses UTF-8 and UTF-16 only). */
#include <stdint.h>
#include <stddef.h>

typedef int32_t UErrorCode;
#define U_UNSUPPORTED_ERROR 16
#define FAIL(e) do { if ((e) && *(e) <= 0) *(e) = U_UNSUPPORTED_ERROR; } while (0)

__declspec(dllexport) void *ucnv_open(const char *name, UErrorCode *e) { (void)name; FAIL(e); return NULL; }
__declspec(dllexport) void ucnv_close(void *c) { (void)c; }
__declspec(dllexport) void ucnv_reset(void *c) { (void)c; }
__declspec(dllexport) int32_t ucnv_countAvailable(void) { return 0; }
__declspec(dllexport) const char *ucnv_getAvailableName(int32_t n) { (void)n; return NULL; }
__declspec(dllexport) const char *ucnv_getName(const void *c, UErrorCode *e) { (void)c; FAIL(e); return NULL; }
__declspec(dllexport) const char *ucnv_getStandardName(const char *n, const char *s, UErrorCode *e) {
    (void)n; (void)s; FAIL(e); return NULL;
}
__declspec(dllexport) int8_t ucnv_getMaxCharSize(const void *c) { (void)c; return 4; }
__declspec(dllexport) int32_t ucnv_fromUCountPending(const void *c, UErrorCode *e) { (void)c; FAIL(e); return 0; }
__declspec(dllexport) int32_t ucnv_toUCountPending(const void *c, UErrorCode *e) { (void)c; FAIL(e); return 0; }
__declspec(dllexport) void ucnv_fromUnicode(void *c, char **t, const char *tl, const uint16_t **s, const uint16_t *sl,
                                            int32_t *o, int8_t f, UErrorCode *e) {
    (void)c; (void)t; (void)tl; (void)s; (void)sl; (void)o; (void)f; FAIL(e);
}
__declspec(dllexport) void ucnv_toUnicode(void *c, uint16_t **t, const uint16_t *tl, const char **s, const char *sl,
                                          int32_t *o, int8_t f, UErrorCode *e) {
    (void)c; (void)t; (void)tl; (void)s; (void)sl; (void)o; (void)f; FAIL(e);
}
__declspec(dllexport) void ucnv_getFromUCallBack(const void *c, void **a, const void **b) { (void)c; *a = NULL; *b = NULL; }
__declspec(dllexport) void ucnv_getToUCallBack(const void *c, void **a, const void **b) { (void)c; *a = NULL; *b = NULL; }
__declspec(dllexport) void ucnv_setFromUCallBack(void *c, void *n, const void *nc, void **o, const void **oc,
                                                 UErrorCode *e) {
    (void)c; (void)n; (void)nc; if (o) *o = NULL; if (oc) *oc = NULL; FAIL(e);
}
__declspec(dllexport) void ucnv_setToUCallBack(void *c, void *n, const void *nc, void **o, const void **oc,
                                               UErrorCode *e) {
    (void)c; (void)n; (void)nc; if (o) *o = NULL; if (oc) *oc = NULL; FAIL(e);
}
__declspec(dllexport) void ucnv_cbFromUWriteUChars(void *a, const uint16_t **s, const uint16_t *sl, int32_t i,
                                                   UErrorCode *e) { (void)a; (void)s; (void)sl; (void)i; FAIL(e); }
__declspec(dllexport) void ucnv_cbToUWriteUChars(void *a, const uint16_t *s, int32_t l, int32_t i, UErrorCode *e) {
    (void)a; (void)s; (void)l; (void)i; FAIL(e);
}
__declspec(dllexport) void UCNV_FROM_U_CALLBACK_SUBSTITUTE(void) {}
__declspec(dllexport) void UCNV_TO_U_CALLBACK_SUBSTITUTE(void) {}
