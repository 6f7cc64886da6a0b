/* hload: a tiny keep-alive HTTP/1.1 load client for HEAD (and GET) requests.
 *
 * Debian's wrk 4.1.0 never completes HEAD responses, so the bench uses this for
 * HEAD.  Like wrk: T threads, C connections in total, one request in flight per
 * connection, for D seconds; every completed response's latency is recorded.
 *
 *   hload -p PORT [-a 127.0.0.1] [-c 32] [-t 2] [-d 5] [-n COUNT] [-m HEAD|GET]
 *         [-H "Name: value"]... PATH
 *
 * With -n, exactly COUNT requests are sent (unless -d runs out first) and the
 * run ends when all are answered: for counting what each request costs upstream.
 *
 * Prints one JSON object: requests, seconds, rps, p50_ms, p99_ms, max_ms,
 * status counts, errors (connection failures, resets, malformed responses).
 * GET bodies must carry Content-Length (chunked responses count as errors).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFSZ 65536

static struct sockaddr_in g_addr;
static char g_req[8192];
static size_t g_reqlen;
static int g_is_head = 1;
static double g_deadline;
static long long g_limit;   /* 0 = no limit */
static long long g_issued;  /* requests started, all threads */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct {
  int fd;
  int connecting;
  size_t sent;
  char buf[BUFSZ];
  size_t have;       /* bytes in buf */
  long long body_left; /* -1 while reading headers */
  int close_after;
  int status;
  double start;
} conn_t;

typedef struct {
  int nconns;
  conn_t *conns;
  int ep;
  uint32_t *lat; /* microseconds */
  size_t nlat, caplat;
  long long status[6]; /* 1xx..5xx, [0]=other */
  long long errors, reconnects;
  int active; /* connections still open or opening */
} worker_t;

static void record(worker_t *w, double seconds) {
  if (w->nlat == w->caplat) {
    w->caplat = w->caplat ? w->caplat * 2 : 65536;
    w->lat = realloc(w->lat, w->caplat * sizeof *w->lat);
    if (!w->lat) { perror("realloc"); exit(1); }
  }
  double us = seconds * 1e6;
  w->lat[w->nlat++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

static int conn_open(worker_t *w, conn_t *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->connecting = 1;
  c->sent = 0;
  c->have = 0;
  c->body_left = -1;
  c->close_after = 0;
  c->start = now();
  if (connect(c->fd, (struct sockaddr *)&g_addr, sizeof g_addr) < 0 && errno != EINPROGRESS) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
  epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev);
  return 0;
}

static void conn_reset(worker_t *w, conn_t *c, int is_error) {
  if (is_error) w->errors++;
  if (c->fd >= 0) {
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
  if (now() >= g_deadline) { w->active--; return; }
  w->reconnects++;
  if (conn_open(w, c) < 0) {
    w->errors++;
    w->active--;
  }
}

/* Parse the header block in c->buf[0..hdr_end). Returns 0 or -1 (malformed). */
static int parse_headers(conn_t *c, size_t hdr_end) {
  c->buf[hdr_end - 1] = 0; /* overwrite the final '\n' */
  int major, minor, status;
  if (sscanf(c->buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3) return -1;
  c->status = status;
  long long clen = -1;
  int chunked = 0;
  c->close_after = (minor == 0);
  for (char *line = strstr(c->buf, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
    char *h = line + 2;
    if (!strncasecmp(h, "Content-Length:", 15)) clen = atoll(h + 15);
    else if (!strncasecmp(h, "Transfer-Encoding:", 18) && strcasestr(h, "chunked")) chunked = 1;
    else if (!strncasecmp(h, "Connection:", 11)) {
      char *e = strstr(h, "\r\n");
      char save = 0;
      if (e) { save = *e; *e = 0; }
      if (strcasestr(h, "close")) c->close_after = 1;
      else if (strcasestr(h, "keep-alive")) c->close_after = 0;
      if (e) *e = save;
    }
  }
  if (g_is_head || status == 204 || status == 304 || status / 100 == 1) c->body_left = 0;
  else if (chunked) return -1;
  else if (clen >= 0) c->body_left = clen;
  else return -1; /* body delimited by close: not supported */
  return 0;
}

static void conn_retire(worker_t *w, conn_t *c) {
  epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  w->active--;
}

/* Starts a request on c, or retires c when the -n budget is spent. */
static void send_request(worker_t *w, conn_t *c) {
  if (c->sent == 0) {
    long long k = __atomic_fetch_add(&g_issued, 1, __ATOMIC_RELAXED);
    if (g_limit && k >= g_limit) { conn_retire(w, c); return; }
  }
  while (c->sent < g_reqlen) {
    ssize_t n = send(c->fd, g_req + c->sent, g_reqlen - c->sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN) return;
      conn_reset(w, c, 1);
      return;
    }
    c->sent += (size_t)n;
  }
}

static void on_complete(worker_t *w, conn_t *c) {
  double t = now();
  record(w, t - c->start);
  int cls = c->status / 100;
  w->status[(cls >= 1 && cls <= 5) ? cls : 0]++;
  if (t >= g_deadline) { conn_retire(w, c); return; }
  if (c->close_after) { conn_reset(w, c, 0); return; }
  c->sent = 0;
  c->body_left = -1;
  c->start = t;
  send_request(w, c);
}

static void on_readable(worker_t *w, conn_t *c) {
  for (;;) {
    if (c->fd < 0) return;
    if (c->body_left > 0 && c->have == 0) {
      /* discard body bytes straight from the socket */
      char sink[BUFSZ];
      size_t want = c->body_left < (long long)sizeof sink ? (size_t)c->body_left : sizeof sink;
      ssize_t n = recv(c->fd, sink, want, 0);
      if (n < 0) { if (errno == EAGAIN) return; conn_reset(w, c, 1); return; }
      if (n == 0) { conn_reset(w, c, 1); return; }
      c->body_left -= n;
      if (c->body_left == 0) on_complete(w, c);
      continue;
    }
    ssize_t n = recv(c->fd, c->buf + c->have, BUFSZ - 1 - c->have, 0);
    if (n < 0) { if (errno == EAGAIN) return; conn_reset(w, c, 1); return; }
    if (n == 0) { conn_reset(w, c, c->have > 0 || c->sent > 0); return; }
    c->have += (size_t)n;
    c->buf[c->have] = 0;
    if (c->body_left < 0) {
      char *e = strstr(c->buf, "\r\n\r\n");
      if (!e) {
        if (c->have >= BUFSZ - 1) conn_reset(w, c, 1);
        continue;
      }
      size_t hdr_end = (size_t)(e - c->buf) + 4;
      if (parse_headers(c, hdr_end) < 0) { conn_reset(w, c, 1); return; }
      size_t extra = c->have - hdr_end;
      if ((long long)extra > c->body_left) { conn_reset(w, c, 1); return; } /* no pipelining */
      c->body_left -= (long long)extra;
      c->have = 0;
      if (c->body_left == 0) on_complete(w, c);
    }
  }
}

static void *run_worker(void *arg) {
  worker_t *w = arg;
  w->ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < w->nconns; i++) {
    w->conns[i].fd = -1;
    if (conn_open(w, &w->conns[i]) < 0) w->errors++;
    else w->active++;
  }
  struct epoll_event evs[256];
  while (now() < g_deadline && w->active > 0) {
    int n = epoll_wait(w->ep, evs, 256, 50);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c->fd < 0) continue;
      if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { conn_reset(w, c, 1); continue; }
        if (!(evs[i].events & EPOLLOUT)) continue;
        c->connecting = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->start = now();
        send_request(w, c);
        continue;
      }
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(w, c);
    }
  }
  for (int i = 0; i < w->nconns; i++)
    if (w->conns[i].fd >= 0) close(w->conns[i].fd);
  close(w->ep);
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *addr = "127.0.0.1", *method = "HEAD";
  int port = 0, conns = 32, threads = 2;
  double dur = 5;
  char headers[4096] = "";
  int opt;
  while ((opt = getopt(argc, argv, "a:p:c:t:d:n:m:H:")) != -1) {
    switch (opt) {
    case 'a': addr = optarg; break;
    case 'p': port = atoi(optarg); break;
    case 'c': conns = atoi(optarg); break;
    case 't': threads = atoi(optarg); break;
    case 'd': dur = atof(optarg); break;
    case 'n': g_limit = atoll(optarg); break;
    case 'm': method = optarg; break;
    case 'H':
      if (strlen(headers) + strlen(optarg) + 3 >= sizeof headers) { fprintf(stderr, "headers too long\n"); return 2; }
      strcat(headers, optarg);
      strcat(headers, "\r\n");
      break;
    default: goto usage;
    }
  }
  if (optind != argc - 1 || port <= 0 || conns <= 0 || threads <= 0) {
  usage:
    fprintf(stderr, "usage: hload -p PORT [-a ADDR] [-c CONNS] [-t THREADS] [-d SECONDS] [-n COUNT] [-m HEAD|GET] [-H 'H: v']... PATH\n");
    return 2;
  }
  if (threads > conns) threads = conns;
  g_is_head = !strcmp(method, "HEAD");
  g_reqlen = (size_t)snprintf(g_req, sizeof g_req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: hload\r\n%s\r\n",
                              method, argv[optind], addr, port, headers);
  memset(&g_addr, 0, sizeof g_addr);
  g_addr.sin_family = AF_INET;
  g_addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, addr, &g_addr.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", addr); return 2; }

  worker_t *ws = calloc((size_t)threads, sizeof *ws);
  pthread_t *tids = calloc((size_t)threads, sizeof *tids);
  double t0 = now();
  g_deadline = t0 + dur;
  for (int i = 0; i < threads; i++) {
    ws[i].nconns = conns / threads + (i < conns % threads);
    ws[i].conns = calloc((size_t)ws[i].nconns, sizeof(conn_t));
    pthread_create(&tids[i], NULL, run_worker, &ws[i]);
  }
  size_t total = 0;
  long long st[6] = {0}, errors = 0, reconnects = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(tids[i], NULL);
    total += ws[i].nlat;
    for (int k = 0; k < 6; k++) st[k] += ws[i].status[k];
    errors += ws[i].errors;
    reconnects += ws[i].reconnects;
  }
  double elapsed = now() - t0;
  uint32_t *all = malloc((total ? total : 1) * sizeof *all);
  size_t k = 0;
  for (int i = 0; i < threads; i++) {
    memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof *all);
    k += ws[i].nlat;
  }
  qsort(all, total, sizeof *all, cmp_u32);
#define PCT(p) (total ? all[(size_t)((double)(total - 1) * (p))] / 1000.0 : 0.0)
  printf("{\"method\":\"%s\",\"connections\":%d,\"threads\":%d,\"requests\":%zu,\"seconds\":%.3f,"
         "\"issued\":%lld,\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
         "\"status\":{\"1xx\":%lld,\"2xx\":%lld,\"3xx\":%lld,\"4xx\":%lld,\"5xx\":%lld,\"other\":%lld},"
         "\"errors\":%lld,\"reconnects\":%lld}\n",
         method, conns, threads, total, elapsed, g_limit && g_issued > g_limit ? g_limit : g_issued,
         total / (g_limit ? elapsed : dur), PCT(0.50), PCT(0.99), PCT(1.0),
         st[1], st[2], st[3], st[4], st[5], st[0], errors, reconnects);
  return 0;
}
