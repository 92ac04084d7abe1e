/*
 * af_alg_shim.c: LD_PRELOAD library that lets BlueZ `btvirt` run on a kernel
 * without AF_ALG crypto sockets, and optionally moves its fixed server sockets
 * into a private directory.
 *
 * Guarantees:
 *  1. socket(AF_ALG, ...) that the kernel refuses with EAFNOSUPPORT returns a
 *     dummy file descriptor (an unbound AF_UNIX socket) instead of failing, so
 *     btvirt's LE controllers get created. bind() of an AF_ALG address on such
 *     a dummy descriptor reports success. Nothing else is faked: a real AF_ALG
 *     socket (kernel with AF_ALG) is left alone, and every other call passes
 *     through. Crypto through the dummy (LE Encrypt, SMP) then fails, which is
 *     the documented limit of the emulated tier.
 *  2. When the environment variable CARKEY_BTVIRT_SOCKET_DIR is set, every
 *     unlink() and AF_UNIX bind() of a path "/tmp/bt-server-NAME" is redirected
 *     to "$CARKEY_BTVIRT_SOCKET_DIR/bt-server-NAME", so two btvirt instances
 *     (two test runs) never touch each other's sockets. A redirected path that
 *     does not fit in sun_path fails with ENAMETOOLONG rather than being cut.
 *  3. When CARKEY_BTVIRT_SOCKET_DIR is set (i.e. btvirt was started by
 *     carkey's launcher), the process asks the kernel to send it SIGTERM when
 *     its parent dies (PR_SET_PDEATHSIG; if CARKEY_BTVIRT_PARENT_PID is set and
 *     is no longer the parent at startup, it exits at once), so a killed test
 *     run never leaves an emulator behind.
 *
 * Build: make -C native  (produces native/build/libafalg_shim.so)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef AF_ALG
#define AF_ALG 38
#endif

#define FIXED_PREFIX "/tmp/bt-server-"
#define DIR_ENV "CARKEY_BTVIRT_SOCKET_DIR"
#define PARENT_ENV "CARKEY_BTVIRT_PARENT_PID"

__attribute__((constructor)) static void die_with_parent(void) {
  const char *dir = getenv(DIR_ENV);
  if (dir == NULL || dir[0] == '\0') return;
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  /* the launcher may already be gone between fork and here */
  const char *parent = getenv(PARENT_ENV);
  if (parent != NULL && parent[0] != '\0' && (long)getppid() != strtol(parent, NULL, 10)) raise(SIGTERM);
}

typedef int (*socket_fn)(int, int, int);
typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*unlink_fn)(const char *);

static void *next_symbol(const char *name) {
  void *sym = dlsym(RTLD_NEXT, name);
  if (sym == NULL) {
    fprintf(stderr, "af_alg_shim: cannot resolve %s\n", name);
    abort();
  }
  return sym;
}

/*
 * Rewrite "/tmp/bt-server-NAME" to "$DIR/bt-server-NAME" into out.
 * Returns 1 if rewritten, 0 if the path is not ours (or no DIR set),
 * -1 if the rewritten path would not fit (errno = ENAMETOOLONG).
 */
static int redirect_path(const char *path, char *out, size_t out_size) {
  const char *dir = getenv(DIR_ENV);
  if (dir == NULL || dir[0] == '\0' || path == NULL) return 0;
  size_t prefix_len = strlen(FIXED_PREFIX);
  if (strncmp(path, FIXED_PREFIX, prefix_len) != 0) return 0;
  /* keep "bt-server-NAME": skip "/tmp/" */
  const char *base = path + strlen("/tmp/");
  int n = snprintf(out, out_size, "%s/%s", dir, base);
  if (n < 0 || (size_t)n >= out_size) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return 1;
}

int socket(int domain, int type, int protocol) {
  static socket_fn real_socket = NULL;
  if (real_socket == NULL) real_socket = (socket_fn)next_symbol("socket");
  int fd = real_socket(domain, type, protocol);
  if (fd < 0 && domain == AF_ALG && errno == EAFNOSUPPORT) {
    /* keep the caller's flags (SOCK_CLOEXEC, SOCK_NONBLOCK) on the dummy */
    int flags = type & (SOCK_CLOEXEC | SOCK_NONBLOCK);
    fd = real_socket(AF_UNIX, SOCK_SEQPACKET | flags, 0);
  }
  return fd;
}

static int socket_domain(int fd) {
  int domain = -1;
  socklen_t len = sizeof(domain);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) return -1;
  return domain;
}

int bind(int fd, const struct sockaddr *addr, socklen_t addrlen) {
  static bind_fn real_bind = NULL;
  if (real_bind == NULL) real_bind = (bind_fn)next_symbol("bind");
  if (addr == NULL) return real_bind(fd, addr, addrlen);

  if (addr->sa_family == AF_ALG && socket_domain(fd) == AF_UNIX) {
    /* our dummy from socket(AF_ALG): pretend the algorithm exists */
    return 0;
  }

  if (addr->sa_family == AF_UNIX && addrlen > offsetof(struct sockaddr_un, sun_path)) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
    char path[sizeof(un->sun_path) + 1];
    size_t max = addrlen - offsetof(struct sockaddr_un, sun_path);
    if (max > sizeof(un->sun_path)) max = sizeof(un->sun_path);
    memcpy(path, un->sun_path, max);
    path[max] = '\0';

    struct sockaddr_un moved;
    memset(&moved, 0, sizeof(moved));
    moved.sun_family = AF_UNIX;
    int r = redirect_path(path, moved.sun_path, sizeof(moved.sun_path));
    if (r < 0) return -1;
    if (r > 0) return real_bind(fd, (const struct sockaddr *)&moved, sizeof(moved));
  }
  return real_bind(fd, addr, addrlen);
}

int unlink(const char *path) {
  static unlink_fn real_unlink = NULL;
  if (real_unlink == NULL) real_unlink = (unlink_fn)next_symbol("unlink");
  char moved[sizeof(((struct sockaddr_un *)0)->sun_path)];
  int r = redirect_path(path, moved, sizeof(moved));
  if (r < 0) return -1;
  return real_unlink(r > 0 ? moved : path);
}
