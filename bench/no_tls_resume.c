/* LD_PRELOAD shim for wrk: no TLS session resumption, so that every new connection
 * is a full handshake. wrk reuses one SSL object per connection slot with SSL_clear(),
 * which keeps the last session and offers it again on reconnect; here the session is
 * dropped after each SSL_clear(), and SSL_set_session() sets none. Built by
 * bench/tls_inspect.py with: cc -shared -fPIC -o no_tls_resume.so no_tls_resume.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

static int (*real_set_session)(SSL *, SSL_SESSION *);
static int (*real_clear)(SSL *);

static void resolve(void)
{
    if (!real_clear) {
        real_clear = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
        real_set_session = (int (*)(SSL *, SSL_SESSION *))dlsym(RTLD_NEXT, "SSL_set_session");
    }
}

int SSL_set_session(SSL *s, SSL_SESSION *session)
{
    (void)s;
    (void)session;
    return 1;
}

int SSL_clear(SSL *s)
{
    resolve();
    int r = real_clear(s);
    real_set_session(s, 0);
    return r;
}
