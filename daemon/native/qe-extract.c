// qe-extract: merges capture files of several interfaces into one nanosecond pcap in timestamp
// order, keeping a time range and a BPF filter. The TypeScript side picks the files from the
// catalog; this program does the per-packet work, so no JavaScript runs per packet.
//
// Usage:
//   qe-extract -w OUT|- [--from NS] [--to NS] [--filter EXPR] [--linktype N] [--snaplen N]
//              [--list FILE|-] [--status-fd N] [--progress-ms N] [--idle] [FILE...]
//
//   -w OUT        output path; `-` writes to standard output (refused when it is a terminal).
//                 A regular file is written under a temporary name and renamed when complete, so
//                 a failed run never leaves a partial output behind. An existing FIFO or device
//                 is written directly.
//   --from/--to   inclusive range in nanoseconds since the epoch (default: everything).
//   --filter      a BPF filter (libpcap syntax), compiled for the inputs' link type.
//   --linktype/--snaplen   the output header when there are no inputs; --linktype is also the
//                 link type every input must have.
//   --list        inputs, one per line: `<stream> <sorted> <path>`. Files of one stream are read
//                 one after another in the order given (their time spans must follow one
//                 another); streams are merged by timestamp. <sorted> is 1 when every record of
//                 that file is known to be no older than the previous one: reading it then stops
//                 at the first record past --to. `<stream> <sorted>:<first>+<count> <path>` reads
//                 only the records starting in <count> ranges of the --ranges file from range
//                 <first> on (what the file's index says may match, and its unindexed tail).
//   --ranges FILE binary ranges for --list: pairs of little-endian u64 (start, stop), ascending and
//                 not overlapping, each start a record's offset: the records starting in
//                 [start, stop) are read (the last one to its end). stop = 2^64-1 reads to the end.
//   --idle        lowers its own priority first: nice +19 and the idle I/O class, so an extraction
//                 asked through the API never delays capture's writes. What `ionice -t -c 3 nice -n 19`
//                 did, without two more programs to load from a cold disk per extraction; a refusal
//                 (a sandbox without these calls) is not an error.
//   FILE...       each a stream of its own (for use by hand).
//
//   qe-extract --plan [--merge-gap N] [--dense X] [--needed BITS] < REQUEST
//                 a mode of its own (read-plan.c, index-plan.h): reads the index of every file of
//                 the request with the lookups given and prints, a JSON line per file, how to read
//                 it (the --ranges above, or why it is read whole). Planning is not extracting, but
//                 it is the same query's native side, and one binary keeps the packaging as it is.
//
// The filter means what it meant live (docs/EXTRACT.md, "Filters and VLAN tags"): the kernel takes
// a frame's outer 802.1Q/802.1ad tag off before a capture filter runs, and libpcap puts it back in
// what is stored. So a filter without the `vlan` keyword is applied to an Ethernet frame with its
// outer tag taken out (`host X` finds X's tagged packets, `not ip6` drops tagged IPv6 as live);
// a filter with `vlan` is applied to the frame as stored, which is what libpcap's `vlan` expects.
// And a datagram is kept whole: a later IPv4/IPv6 fragment passes when its first fragment (same
// file, same link header, addresses, protocol and ID, within FRAG_WINDOW_NS) passed, so `port 53`
// returns every fragment of a matching DNS answer (libpcap's `port` sees ports in first fragments only).
//   --status-fd   where JSON status lines go (default 2): `progress` lines every --progress-ms
//                 (0 = none), `warning` lines, and one final `done` or `error` line.
//
// Exit codes (docs/EXTRACT.md): 0 packets written; 1 internal or read I/O error; 2 usage error or
// bad filter; 3 nothing in the range (a valid empty pcap was written); 4 input error (not a pcap,
// link types differ, unreadable); 5 output error; 130 interrupted; 141 the reader closed the pipe.
//
// A `.part` input is read up to its last whole record as of when it is opened: the capture helper
// may still be appending to it. A missing input (removed by retention since the catalog was read)
// is a warning, not an error: a `.part` input is also looked for under its closed name.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pcap-format.h"
#include "linktype.h"
#include "read-plan.h"

enum {
  EXIT_OK_PACKETS = 0,
  EXIT_INTERNAL = 1,
  EXIT_USAGE = 2,
  EXIT_EMPTY = 3,
  EXIT_INPUT = 4,
  EXIT_OUTPUT = 5,
  EXIT_INTERRUPTED = 130,
  EXIT_PIPE_CLOSED = 141,
};

#define GLOBAL_HEADER_LEN QE_PCAP_GLOBAL_LEN
#define RECORD_HEADER_LEN QE_PCAP_RECORD_LEN
#define READ_CHUNK (1u << 20)
#define WRITE_CHUNK (4u << 20)
#define NS_PER_S 1000000000ull

struct input_file {
  char *path;
  bool sorted;
  bool ranged;
  size_t first_range, nranges;
};

struct stream {
  size_t index;
  struct input_file *files;
  size_t nfiles, files_cap, next_file;

  int fd;
  const char *path;
  bool sorted, part, swapped, nanos;
  uint32_t max_caplen;
  size_t file_no; // which of the stream's files is open, for the fragment table
  // Ranged reading (an indexed file): the records starting in ranges[range_i - 1] are being read.
  bool ranged;
  size_t range_i, range_end;
  // Readahead of the ranges still to read, across the stream's files (advise_ahead): the next
  // range to advise (file, range) and the bytes advised and not read yet.
  size_t adv_file, adv_range;
  int adv_fd;
  off_t adv_limit;
  uint64_t ahead;
  uint64_t range_stop;
  off_t limit; // file size when opened: a part file is read as far as it was written then
  off_t file_pos; // file offset of the byte after buf[len - 1]

  uint8_t *buf;
  size_t cap, off, len; // unread bytes are buf[off, len)

  // The current record, valid until the stream is advanced.
  uint64_t ts;
  uint32_t caplen, origlen;
  const uint8_t *data;
};

struct counters {
  uint64_t packets, bytes, records_read, out_of_range, filtered_out, bytes_read, read_calls;
  uint64_t files_opened, files_missing, partial_tails, damaged_files;
};

static struct {
  const char *out_path;
  uint64_t from_ns, to_ns;
  const char *filter;
  long linktype, snaplen;
  int status_fd;
  long progress_ms;
} opt = {.to_ns = UINT64_MAX, .linktype = -1, .snaplen = -1, .status_fd = 2};

static struct counters count;
static struct stream *streams;
static size_t nstreams;
static int linktype = -1;
static const char *linktype_source;
static struct bpf_program filter_prog;
static bool have_filter;
static bool strip_outer_tag; // the filter has no `vlan`: it sees frames as the kernel showed them live
static uint8_t *strip_buf;
static size_t strip_cap;
static uint64_t *ranges; // --ranges: (start, stop) pairs
static size_t nranges;
static uint32_t *advised; // bytes advised per range and not read yet

static int out_fd = -1;
static uint8_t *out_buf;
static size_t out_len;
// The temporary output, removed by the signal handler too: fixed storage keeps that safe.
static char tmp_path[PATH_MAX];
static volatile sig_atomic_t tmp_active;

static uint64_t next_progress_ms;

// ---- messages -------------------------------------------------------------------------------

static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

static FILE *status_file;

static void status_counts(FILE *f) {
  fprintf(f,
          "\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"records_read\":%" PRIu64
          ",\"out_of_range\":%" PRIu64 ",\"filtered_out\":%" PRIu64 ",\"bytes_read\":%" PRIu64
          ",\"files_opened\":%" PRIu64 ",\"files_missing\":%" PRIu64 ",\"partial_tails\":%" PRIu64
          ",\"damaged_files\":%" PRIu64 ",\"read_calls\":%" PRIu64,
          count.packets, count.bytes, count.records_read, count.out_of_range, count.filtered_out,
          count.bytes_read, count.files_opened, count.files_missing, count.partial_tails,
          count.damaged_files, count.read_calls);
}

static void warn(const char *fmt, ...) {
  char msg[PATH_MAX + 512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "qe-extract: warning: %s\n", msg);
  fputs("{\"type\":\"warning\",\"message\":", status_file);
  json_string(status_file, msg);
  fputs("}\n", status_file);
  fflush(status_file);
}

static void remove_tmp(void) {
  if (tmp_active) {
    unlink(tmp_path);
    tmp_active = 0;
  }
}

// Reports the error in both forms and exits; the partial output is removed first.
__attribute__((noreturn, format(printf, 2, 3))) static void die(int code, const char *fmt, ...) {
  char msg[PATH_MAX + 1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  remove_tmp();
  fprintf(stderr, "qe-extract: %s\n", msg);
  if (status_file) {
    fprintf(status_file, "{\"type\":\"error\",\"exit\":%d,\"message\":", code);
    json_string(status_file, msg);
    fputc(',', status_file);
    status_counts(status_file);
    fputs("}\n", status_file);
    fflush(status_file);
  }
  exit(code);
}

static uint64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void maybe_progress(void) {
  if (opt.progress_ms <= 0) return;
  uint64_t now = now_ms();
  if (now < next_progress_ms) return;
  next_progress_ms = now + (uint64_t)opt.progress_ms;
  fputs("{\"type\":\"progress\",", status_file);
  status_counts(status_file);
  fputs("}\n", status_file);
  fflush(status_file);
}

static void on_signal(int sig) {
  // Only async-signal-safe calls here: unlink and _exit.
  if (tmp_active) unlink(tmp_path);
  _exit(sig == SIGINT ? EXIT_INTERRUPTED : 128 + sig);
}

// ---- output ---------------------------------------------------------------------------------

static void write_all(const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(out_fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE) {
        remove_tmp();
        exit(EXIT_PIPE_CLOSED); // the reader went away (wireshark closed): not worth a message
      }
      die(EXIT_OUTPUT, "writing %s: %s", opt.out_path, strerror(errno));
    }
    p += w;
    n -= (size_t)w;
  }
}

static void out_flush(void) {
  write_all(out_buf, out_len);
  out_len = 0;
}

static void out_append(const void *p, size_t n) {
  if (out_len + n > WRITE_CHUNK) out_flush();
  if (n > WRITE_CHUNK) {
    write_all(p, n);
    return;
  }
  memcpy(out_buf + out_len, p, n);
  out_len += n;
}

static void put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void put_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void open_output(void) {
  if (strcmp(opt.out_path, "-") == 0) {
    if (isatty(STDOUT_FILENO))
      die(EXIT_USAGE, "refusing to write a binary pcap to a terminal: pipe it (| wireshark -k -i -) or use -w FILE");
    out_fd = STDOUT_FILENO;
    return;
  }
  struct stat st;
  if (stat(opt.out_path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) die(EXIT_OUTPUT, "output %s is a directory: give a file name", opt.out_path);
    if (!S_ISREG(st.st_mode)) {
      // A FIFO or device cannot be replaced by a rename; write to it as it is.
      out_fd = open(opt.out_path, O_WRONLY | O_CLOEXEC);
      if (out_fd < 0) die(EXIT_OUTPUT, "cannot open output %s: %s", opt.out_path, strerror(errno));
      return;
    }
  }
  const char *slash = strrchr(opt.out_path, '/');
  int n;
  if (slash)
    n = snprintf(tmp_path, sizeof tmp_path, "%.*s/.%s.qe-extract-XXXXXX", (int)(slash - opt.out_path),
                 opt.out_path, slash + 1);
  else
    n = snprintf(tmp_path, sizeof tmp_path, ".%s.qe-extract-XXXXXX", opt.out_path);
  if (n < 0 || (size_t)n >= sizeof tmp_path) die(EXIT_OUTPUT, "output path too long: %s", opt.out_path);
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old); // the handler must not see a created but unrecorded file
  out_fd = mkostemp(tmp_path, O_CLOEXEC);
  if (out_fd >= 0) tmp_active = 1;
  int err = errno;
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (out_fd < 0) {
    const char *dir = slash ? "its directory" : "the current directory";
    die(EXIT_OUTPUT, "cannot create output %s in %s: %s", opt.out_path, dir, strerror(err));
  }
  mode_t mask = umask(0);
  umask(mask);
  fchmod(out_fd, 0666 & ~mask);
}

static void finish_output(void) {
  out_flush();
  if (!tmp_active) return;
  // Made durable before it takes its name, so the name never points at a half-written file.
  if (fdatasync(out_fd) != 0) die(EXIT_OUTPUT, "writing %s: %s", opt.out_path, strerror(errno));
  if (close(out_fd) != 0) die(EXIT_OUTPUT, "writing %s: %s", opt.out_path, strerror(errno));
  if (rename(tmp_path, opt.out_path) != 0) die(EXIT_OUTPUT, "cannot rename output into %s: %s", opt.out_path, strerror(errno));
  tmp_active = 0;
}

// A cold disk is a queue, not a seek: candidate blocks are scattered, and reading them one after
// another waits one disk round trip each. So every range still to read is asked for (WILLNEED)
// ahead of its read, across the stream's files, up to ADVISE_AHEAD bytes not read yet: the disk
// works on many at once while the earlier ones are filtered. Each range is advised a little past
// its stop, where the last record starting in it ends (ADVISE_TAIL covers frames up to a few KiB;
// a longer one is read when reached). A long range is advised its first READ_CHUNK: the
// sequential readahead set for it reads on.
#define ADVISE_AHEAD (4u << 20)
#define ADVISE_TAIL 4096u
// What a range's read takes past its stop: the rest of its last record, for frames up to 1.5 KiB or so.
#define READ_TAIL 2048u

// ---- input ----------------------------------------------------------------------------------

static void range_read(struct stream *s, size_t r) {
  s->ahead -= advised[r];
  advised[r] = 0;
}

static void close_file(struct stream *s) {
  // Ranges left unread (a sorted file past --to, a damaged one) no longer hold readahead budget.
  if (s->ranged)
    for (; s->range_i < s->range_end; s->range_i++) range_read(s, s->range_i);
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  s->off = s->len = 0;
}

// Makes at least `need` unread bytes available; false when the file (as of its opening) ends first.
static bool fill(struct stream *s, size_t need) {
  if (s->len - s->off >= need) return true;
  if (s->off > 0) {
    memmove(s->buf, s->buf + s->off, s->len - s->off);
    s->len -= s->off;
    s->off = 0;
  }
  if (need > s->cap) {
    size_t cap = s->cap;
    while (cap < need) cap *= 2;
    uint8_t *b = realloc(s->buf, cap);
    if (!b) die(EXIT_INTERNAL, "out of memory for a %zu-byte record in %s", need, s->path);
    s->buf = b;
    s->cap = cap;
  }
  while (s->len < need && s->file_pos < s->limit) {
    size_t want = s->cap - s->len;
    if ((off_t)want > s->limit - s->file_pos) want = (size_t)(s->limit - s->file_pos);
    if (s->ranged) {
      // Read what the range holds (and the rest of a record that crosses its end), not a chunk.
      uint64_t in_range = s->range_stop > (uint64_t)s->file_pos ? s->range_stop - (uint64_t)s->file_pos : 0;
      size_t still = need - (s->len - s->off);
      // The last record starting in the range ends past it: its rest, advised with the range, comes
      // in the same read (a second read per range would cost a syscall, and a disk trip if not advised).
      uint64_t w = in_range + READ_TAIL > still ? in_range + READ_TAIL : still;
      if (w < want) want = (size_t)w;
    }
    ssize_t r = read(s->fd, s->buf + s->len, want);
    count.read_calls++;
    if (r < 0) {
      if (errno == EINTR) continue;
      die(EXIT_INTERNAL, "reading %s: %s", s->path, strerror(errno));
    }
    if (r == 0) break; // truncated under us: what is there is all there is
    s->len += (size_t)r;
    s->file_pos += r;
    count.bytes_read += (uint64_t)r;
    maybe_progress();
  }
  return s->len - s->off >= need;
}

static int open_input(const char *path, const char **opened) {
  *opened = path;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0 || errno != ENOENT) return fd;
  // The capture helper may have closed and renamed the part file since the catalog was read.
  size_t n = strlen(path);
  if (n > 5 && strcmp(path + n - 5, ".part") == 0) {
    static char closed[PATH_MAX];
    if (n - 5 < sizeof closed) {
      memcpy(closed, path, n - 5);
      closed[n - 5] = 0;
      int fd2 = open(closed, O_RDONLY | O_CLOEXEC);
      if (fd2 >= 0) {
        *opened = closed;
        return fd2;
      }
    }
    errno = ENOENT;
  }
  return -1;
}

// Opens the stream's next file that exists and checks its global header; false when none is left.
static bool open_next_file(struct stream *s) {
  while (s->next_file < s->nfiles) {
    s->file_no = s->next_file;
    struct input_file *f = &s->files[s->next_file++];
    const char *opened;
    int fd = open_input(f->path, &opened);
    if (fd < 0) {
      if (errno == ENOENT) {
        count.files_missing++;
        warn("%s no longer exists (removed by retention?): skipped", f->path);
        continue;
      }
      die(EXIT_INPUT, "cannot open %s: %s", f->path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) die(EXIT_INPUT, "cannot stat %s: %s", f->path, strerror(errno));
    // An indexed file is read in pieces: readahead past a piece would read what is not asked for.
    posix_fadvise(fd, 0, 0, f->ranged ? POSIX_FADV_RANDOM : POSIX_FADV_SEQUENTIAL);
    s->ranged = f->ranged;
    s->range_i = f->first_range;
    s->range_end = f->first_range + f->nranges;
    s->range_stop = GLOBAL_HEADER_LEN;
    count.files_opened++;
    size_t n = strlen(f->path);
    s->fd = fd;
    s->path = f->path;
    s->sorted = f->sorted;
    s->part = opened == f->path && n > 5 && strcmp(f->path + n - 5, ".part") == 0;
    s->limit = st.st_size;
    s->file_pos = 0;
    s->off = s->len = 0;
    if (!fill(s, GLOBAL_HEADER_LEN)) {
      // A part file opened before its header was flushed holds nothing yet.
      if (s->part) {
        close_file(s);
        continue;
      }
      die(EXIT_INPUT, "%s is not a pcap file (only %zu bytes)", s->path, s->len);
    }
    struct qe_pcap_global g;
    if (!qe_pcap_global_decode(s->buf, &g)) {
      uint32_t magic;
      memcpy(&magic, s->buf, 4);
      die(EXIT_INPUT, "%s is not a pcap file (magic 0x%08x)", s->path, magic);
    }
    s->swapped = g.swapped;
    s->nanos = g.nanos;
    int lt = (int)g.linktype;
    if (linktype < 0) {
      linktype = lt;
      linktype_source = s->path;
    } else if (lt != linktype) {
      die(EXIT_INPUT, "link types differ: %s has %d (%s), %s has %d (%s); extract them separately (--iface)",
          linktype_source, linktype, pcap_datalink_val_to_name(linktype) ? pcap_datalink_val_to_name(linktype) : "?",
          s->path, lt, pcap_datalink_val_to_name(lt) ? pcap_datalink_val_to_name(lt) : "?");
    }
    if (opt.snaplen < (long)g.snaplen) opt.snaplen = g.snaplen;
    s->max_caplen = qe_pcap_caplen_limit(g.snaplen);
    s->off = GLOBAL_HEADER_LEN;
    return true;
  }
  return false;
}

static void advise_ahead(struct stream *s) {
  while (s->ahead < ADVISE_AHEAD && s->adv_file < s->nfiles) {
    struct input_file *f = &s->files[s->adv_file];
    // The cursor never trails the reading (a file closed early skips its ranges).
    bool current = s->fd >= 0 && s->adv_file + 1 == s->next_file;
    if (s->adv_file + 1 < s->next_file || (current && s->adv_range < s->range_i)) {
      if (s->adv_file + 1 < s->next_file) {
        if (s->adv_fd >= 0) close(s->adv_fd);
        s->adv_fd = -1;
        s->adv_file = s->next_file - 1;
        s->adv_range = 0;
        continue;
      }
      s->adv_range = s->range_i;
    }
    if (s->adv_range < f->first_range) s->adv_range = f->first_range;
    if (!f->ranged || s->adv_range >= f->first_range + f->nranges) {
      if (s->adv_fd >= 0) close(s->adv_fd);
      s->adv_fd = -1;
      s->adv_file++;
      s->adv_range = 0;
      continue;
    }
    if (s->adv_fd < 0) {
      // Its own descriptor: the file may not be open for reading yet (a later one of the stream).
      const char *opened;
      struct stat st;
      s->adv_fd = open_input(f->path, &opened);
      if (s->adv_fd >= 0 && fstat(s->adv_fd, &st) == 0) s->adv_limit = st.st_size;
      else {
        if (s->adv_fd >= 0) close(s->adv_fd);
        s->adv_fd = -1;
        s->adv_range = f->first_range + f->nranges; // reported when the reading reaches it
        continue;
      }
    }
    size_t r = s->adv_range++;
    uint64_t a = ranges[2 * r], b = ranges[2 * r + 1];
    if (a >= (uint64_t)s->adv_limit) {
      s->adv_range = f->first_range + f->nranges;
      continue;
    }
    if (b - a > READ_CHUNK) b = a + READ_CHUNK;
    else b += ADVISE_TAIL;
    if (b > (uint64_t)s->adv_limit) b = (uint64_t)s->adv_limit;
    posix_fadvise(s->adv_fd, (off_t)a, (off_t)(b - a), POSIX_FADV_WILLNEED);
    advised[r] = (uint32_t)(b - a);
    s->ahead += b - a;
  }
}

// Positions a ranged stream at its next record to read; false when its ranges are done.
static bool next_in_range(struct stream *s) {
  uint64_t pos = (uint64_t)s->file_pos - (uint64_t)(s->len - s->off);
  while (pos >= s->range_stop) {
    if (s->range_i >= s->range_end) return false;
    uint64_t start = ranges[2 * s->range_i], stop = ranges[2 * s->range_i + 1];
    range_read(s, s->range_i++);
    if (stop <= pos) continue; // inside what was read already
    s->range_stop = stop;
    if (start > pos) {
      if (start >= (uint64_t)s->limit) return false;
      // Buffered bytes up to the start are skipped; past them, the file is read from the start.
      if (start < (uint64_t)s->file_pos) s->off += (size_t)(start - pos);
      else {
        s->off = s->len = 0;
        s->file_pos = (off_t)start;
        if (lseek(s->fd, (off_t)start, SEEK_SET) < 0) die(EXIT_INTERNAL, "seeking in %s: %s", s->path, strerror(errno));
      }
      pos = start;
    }
    advise_ahead(s);
    // A long range (the unindexed tail, a run of candidate blocks) is read like a scan.
    uint64_t end = s->range_stop < (uint64_t)s->limit ? s->range_stop : (uint64_t)s->limit;
    posix_fadvise(s->fd, 0, 0, end - pos >= 4 * READ_CHUNK ? POSIX_FADV_SEQUENTIAL : POSIX_FADV_RANDOM);
  }
  return true;
}

// ---- fragments ------------------------------------------------------------------------------

#define FRAG_SLOTS 1024
#define FRAG_WINDOW_NS (30ull * NS_PER_S) // Linux keeps a datagram's fragments 30 s (ipfrag_time)
#define FRAG_L2_MAX 32
struct frag_key {
  uint32_t stream, file;
  uint8_t l2len, version, proto, pad;
  uint8_t l2[FRAG_L2_MAX];
  uint8_t addrs[32];
  uint32_t id;
};
static struct {
  struct frag_key key[FRAG_SLOTS];
  uint64_t ts[FRAG_SLOTS];
  uint32_t hash[FRAG_SLOTS];
  size_t next, used;
} frags;

// Where a frame's fragment facts are: 1 first fragment of several, 2 a later one, 0 neither.
static int frag_of(const struct stream *s, const uint8_t *d, uint32_t caplen, struct frag_key *k) {
  if (linktype != DLT_EN10MB || caplen < 14) return 0;
  size_t p = 12;
  uint16_t et = (uint16_t)(d[p] << 8 | d[p + 1]);
  while ((et == 0x8100 || et == 0x88a8 || et == 0x9100) && p + 6 <= caplen) {
    p += 4;
    et = (uint16_t)(d[p] << 8 | d[p + 1]);
  }
  p += 2;
  if (p > FRAG_L2_MAX) return 0;
  memset(k, 0, sizeof *k);
  k->stream = (uint32_t)s->index;
  k->file = (uint32_t)s->file_no;
  k->l2len = (uint8_t)p;
  memcpy(k->l2, d, p);
  if (et == 0x0800 && p + 20 <= caplen && (d[p] >> 4) == 4) {
    uint16_t fo = (uint16_t)(d[p + 6] << 8 | d[p + 7]);
    bool more = fo & 0x2000;
    fo &= 0x1fff;
    if (!more && fo == 0) return 0;
    k->version = 4;
    k->proto = d[p + 9];
    memcpy(k->addrs, d + p + 12, 8);
    k->id = (uint32_t)(d[p + 4] << 8 | d[p + 5]);
    return fo == 0 ? 1 : 2;
  }
  if (et == 0x86dd && p + 40 <= caplen) {
    uint8_t nh = d[p + 6];
    memcpy(k->addrs, d + p + 8, 32);
    size_t q = p + 40;
    for (int n = 0; n < 8; n++) {
      if (nh == 44) {
        if (q + 8 > caplen) return 0;
        uint16_t fo = (uint16_t)(d[q + 2] << 8 | d[q + 3]);
        bool more = fo & 1;
        fo >>= 3;
        if (!more && fo == 0) return 0;
        k->version = 6;
        k->proto = d[q];
        k->id = (uint32_t)d[q + 4] << 24 | (uint32_t)d[q + 5] << 16 | (uint32_t)d[q + 6] << 8 | d[q + 7];
        return fo == 0 ? 1 : 2;
      }
      if (nh != 0 && nh != 43 && nh != 60) return 0;
      if (q + 8 > caplen) return 0;
      nh = d[q];
      q += 8 + (size_t)d[q + 1] * 8;
    }
  }
  return 0;
}

static uint32_t frag_hash(const struct frag_key *k) {
  uint32_t h = 2166136261u;
  const uint8_t *b = (const uint8_t *)k;
  for (size_t i = 0; i < sizeof *k; i++) h = (h ^ b[i]) * 16777619u;
  return h;
}

// Whether a record is kept: the filter as live saw the frame, or its datagram's first fragment was.
static bool selected(const struct stream *s, uint64_t ts, const uint8_t *d, uint32_t caplen, uint32_t origlen) {
  struct pcap_pkthdr ph = {.caplen = caplen, .len = origlen};
  const uint8_t *view = d;
  if (strip_outer_tag && caplen >= 18 && ((d[12] == 0x81 && d[13] == 0x00) || (d[12] == 0x88 && d[13] == 0xa8))) {
    if (strip_cap < caplen) {
      free(strip_buf);
      strip_cap = caplen > READ_CHUNK ? caplen : READ_CHUNK;
      strip_buf = malloc(strip_cap);
      if (!strip_buf) die(EXIT_INTERNAL, "out of memory");
    }
    memcpy(strip_buf, d, 12);
    memcpy(strip_buf + 12, d + 16, caplen - 16);
    ph.caplen = caplen - 4;
    ph.len = origlen >= 4 ? origlen - 4 : 0;
    view = strip_buf;
  }
  bool match = pcap_offline_filter(&filter_prog, &ph, view) != 0;
  struct frag_key k;
  int frag = frag_of(s, d, caplen, &k);
  if (frag == 0) return match;
  uint32_t h = frag_hash(&k);
  if (match) {
    if (frag == 1) {
      frags.key[frags.next] = k;
      frags.ts[frags.next] = ts;
      frags.hash[frags.next] = h;
      frags.next = (frags.next + 1) % FRAG_SLOTS;
      if (frags.used < FRAG_SLOTS) frags.used++;
    }
    return true;
  }
  if (frag != 2) return false;
  for (size_t i = 0; i < frags.used; i++)
    if (frags.hash[i] == h && ts >= frags.ts[i] && ts - frags.ts[i] <= FRAG_WINDOW_NS && memcmp(&frags.key[i], &k, sizeof k) == 0)
      return true;
  return false;
}

// Whether the filter names `vlan` (as a word of its own: not in `vlan.example.com` or `myvlan`).
static bool mentions_vlan(const char *f) {
  for (const char *p = strstr(f, "vlan"); p; p = strstr(p + 1, "vlan")) {
    bool before = p == f || !(isalnum((unsigned char)p[-1]) || strchr("_.-:\\", p[-1]));
    bool after = !(isalnum((unsigned char)p[4]) || (p[4] && strchr("_.-:", p[4])));
    if (before && after) return true;
  }
  return false;
}

// Moves the stream to its next record that is in range and passes the filter; false at its end.
static bool advance(struct stream *s) {
  for (;;) {
    if (s->fd < 0 && !open_next_file(s)) return false;
    if (s->ranged && !next_in_range(s)) {
      close_file(s);
      continue;
    }
    if (!fill(s, RECORD_HEADER_LEN)) {
      if (s->len > s->off) {
        count.partial_tails++;
        if (!s->part) warn("%s ends with %zu bytes of a cut-short record: ignored", s->path, s->len - s->off);
      }
      close_file(s);
      continue;
    }
    const uint8_t *h = s->buf + s->off;
    struct qe_pcap_record r;
    qe_pcap_record_decode(h, s->swapped, &r);
    uint32_t caplen = r.caplen, origlen = r.origlen;
    if (caplen > s->max_caplen) {
      count.damaged_files++;
      warn("%s has an impossible record (caplen %" PRIu32 ") at offset %lld: the rest of the file is skipped",
           s->path, caplen, (long long)(s->file_pos - (off_t)(s->len - s->off)));
      close_file(s);
      continue;
    }
    if (!fill(s, RECORD_HEADER_LEN + (size_t)caplen)) {
      count.partial_tails++;
      if (!s->part) warn("%s ends with a cut-short record: ignored", s->path);
      close_file(s);
      continue;
    }
    h = s->buf + s->off; // fill() may have moved the buffer
    s->off += RECORD_HEADER_LEN + caplen;
    count.records_read++;
    uint64_t ts = qe_pcap_record_ns(&r, s->nanos);
    if (ts < opt.from_ns || ts > opt.to_ns) {
      count.out_of_range++;
      // Records of a sorted file only get later: nothing further in it can be in range.
      if (ts > opt.to_ns && s->sorted) close_file(s);
      continue;
    }
    if (have_filter && !selected(s, ts, h + RECORD_HEADER_LEN, caplen, origlen)) {
      count.filtered_out++;
      continue;
    }
    s->ts = ts;
    s->caplen = caplen;
    s->origlen = origlen;
    s->data = h + RECORD_HEADER_LEN;
    return true;
  }
}

// The output's header must cover every record written (or qe-extract could not read its own
// output back): records of later files count too, so every input's snaplen is read up front.
static void cover_every_snaplen(void) {
  for (size_t i = 0; i < nstreams; i++)
    for (size_t k = 0; k < streams[i].nfiles; k++) {
      // Only regular files: opening a FIFO would take the writer's rendezvous from the merge.
      struct stat st;
      if (stat(streams[i].files[k].path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
      const char *opened;
      int fd = open_input(streams[i].files[k].path, &opened);
      if (fd < 0) continue; // reported when the merge reaches it
      uint8_t h[GLOBAL_HEADER_LEN];
      struct qe_pcap_global g;
      if (pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h && qe_pcap_global_decode(h, &g) && opt.snaplen < (long)g.snaplen)
        opt.snaplen = g.snaplen;
      close(fd);
    }
  // A larger snaplen takes no larger record (pcap-format.h); the header says what readers take.
  if (opt.snaplen > (long)QE_PCAP_CAPLEN_CEILING) opt.snaplen = QE_PCAP_CAPLEN_CEILING;
}

// ---- merge ----------------------------------------------------------------------------------

static struct stream **heap;
static size_t heap_len;

// Ties go to the lower stream index, so equal timestamps come out in a fixed order.
static bool earlier(const struct stream *a, const struct stream *b) {
  return a->ts < b->ts || (a->ts == b->ts && a->index < b->index);
}

static void sift_down(size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap_len && earlier(heap[l], heap[m])) m = l;
    if (r < heap_len && earlier(heap[r], heap[m])) m = r;
    if (m == i) return;
    struct stream *t = heap[i];
    heap[i] = heap[m];
    heap[m] = t;
    i = m;
  }
}

static void write_record(const struct stream *s) {
  uint8_t h[RECORD_HEADER_LEN];
  put_le32(h, (uint32_t)(s->ts / NS_PER_S));
  put_le32(h + 4, (uint32_t)(s->ts % NS_PER_S));
  put_le32(h + 8, s->caplen);
  put_le32(h + 12, s->origlen);
  out_append(h, sizeof h);
  out_append(s->data, s->caplen);
  count.packets++;
  count.bytes += s->caplen;
}

static void merge(void) {
  heap = calloc(nstreams ? nstreams : 1, sizeof *heap);
  if (!heap) die(EXIT_INTERNAL, "out of memory");
  for (size_t i = 0; i < nstreams; i++)
    if (advance(&streams[i])) heap[heap_len++] = &streams[i];
  for (size_t i = heap_len / 2; i-- > 0;) sift_down(i);
  while (heap_len > 0) {
    struct stream *s = heap[0];
    write_record(s);
    if (!advance(s)) heap[0] = heap[--heap_len];
    sift_down(0);
  }
}

// ---- set-up ---------------------------------------------------------------------------------

static struct stream *stream_at(size_t index) {
  if (index >= nstreams) {
    size_t n = index + 1;
    struct stream *grown = realloc(streams, n * sizeof *streams);
    if (!grown) die(EXIT_INTERNAL, "out of memory");
    for (size_t i = nstreams; i < n; i++) grown[i] = (struct stream){.index = i, .fd = -1, .adv_fd = -1};
    streams = grown;
    nstreams = n;
  }
  return &streams[index];
}

static void add_file(size_t index, const char *path, bool sorted) {
  struct stream *s = stream_at(index);
  if (s->nfiles == s->files_cap) {
    size_t cap = s->files_cap ? s->files_cap * 2 : 8;
    struct input_file *f = realloc(s->files, cap * sizeof *f);
    if (!f) die(EXIT_INTERNAL, "out of memory");
    s->files = f;
    s->files_cap = cap;
  }
  char *copy = strdup(path);
  if (!copy) die(EXIT_INTERNAL, "out of memory");
  s->files[s->nfiles++] = (struct input_file){.path = copy, .sorted = sorted};
}

static void read_list(const char *list_path) {
  FILE *f = strcmp(list_path, "-") == 0 ? stdin : fopen(list_path, "r");
  if (!f) die(EXIT_USAGE, "cannot read --list %s: %s", list_path, strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  unsigned long lineno = 0;
  while ((n = getline(&line, &cap, f)) >= 0) {
    lineno++;
    if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
    if (n == 0) continue;
    char *end;
    errno = 0;
    unsigned long idx = strtoul(line, &end, 10);
    bool bad = errno || end == line || *end != ' ' || idx > 1000000 || (end[1] != '0' && end[1] != '1');
    bool sorted = !bad && end[1] == '1';
    char *rest = bad ? NULL : end + 2;
    bool ranged = false;
    unsigned long long first = 0, n_r = 0;
    if (rest && *rest == ':') {
      char *e2;
      errno = 0;
      first = strtoull(rest + 1, &e2, 10);
      if (errno || e2 == rest + 1 || *e2 != '+') bad = true;
      else {
        char *e3;
        n_r = strtoull(e2 + 1, &e3, 10);
        if (errno || e3 == e2 + 1 || first > nranges || n_r > nranges - first) bad = true;
        rest = e3;
        ranged = true;
      }
    }
    if (bad || *rest != ' ' || !rest[1])
      die(EXIT_USAGE, "--list line %lu: expected \"<stream> <0|1>[:<first>+<count>] <path>\" (ranges within the %zu of --ranges), got \"%s\"", lineno, nranges, line);
    add_file(idx, rest + 1, sorted);
    struct input_file *fl = &stream_at(idx)->files[stream_at(idx)->nfiles - 1];
    fl->ranged = ranged;
    fl->first_range = (size_t)first;
    fl->nranges = (size_t)n_r;
  }
  free(line);
  if (f != stdin) fclose(f);
}

static void read_ranges(const char *path) {
  // /dev/fd/N is read as the descriptor itself: the daemon hands a socket, which open() refuses.
  int fd, inherited;
  char tail;
  if (sscanf(path, "/dev/fd/%d%c", &inherited, &tail) == 1 && inherited > 2) fd = inherited;
  else fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(EXIT_USAGE, "cannot read --ranges %s: %s", path, strerror(errno));
  size_t cap = 4096, len = 0;
  uint8_t *b = malloc(cap);
  for (;;) {
    if (!b) die(EXIT_INTERNAL, "out of memory");
    if (len == cap) b = realloc(b, cap *= 2);
    if (!b) die(EXIT_INTERNAL, "out of memory");
    ssize_t r = read(fd, b + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die(EXIT_USAGE, "reading --ranges %s: %s", path, strerror(errno));
    if (r == 0) break;
    len += (size_t)r;
  }
  close(fd);
  if (len % 16) die(EXIT_USAGE, "--ranges %s holds %zu bytes, not whole (start, stop) pairs of 8-byte numbers", path, len);
  nranges = len / 16;
  ranges = malloc(len ? len : 1);
  if (!ranges) die(EXIT_INTERNAL, "out of memory");
  for (size_t i = 0; i < 2 * nranges; i++) {
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = v << 8 | b[i * 8 + (size_t)k];
    ranges[i] = v;
  }
  free(b);
  for (size_t i = 0; i < nranges; i++)
    if (ranges[2 * i] >= ranges[2 * i + 1] || ranges[2 * i] < GLOBAL_HEADER_LEN)
      die(EXIT_USAGE, "--ranges %s: range %zu [%" PRIu64 ", %" PRIu64 ") is empty or starts in the pcap header", path, i, ranges[2 * i], ranges[2 * i + 1]);
}

static uint64_t parse_u64(const char *name, const char *v) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || end == v || *end || v[0] == '-')
    die(EXIT_USAGE, "%s must be a whole number (nanoseconds since the epoch), got \"%s\"", name, v);
  return x;
}

// IOPRIO_* of linux/ioprio.h, which glibc does not wrap.
#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_CLASS_IDLE 3
#define IOPRIO_CLASS_SHIFT 13

static void lower_priority(void) {
  (void)syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
  errno = 0;
  if (nice(19) == -1 && errno) return; // nice never refuses to lower a priority; nothing to add
}

static void usage(void) {
  fputs("usage: qe-extract -w OUT|- [--from NS] [--to NS] [--filter EXPR] [--linktype N] [--snaplen N]\n"
        "                  [--list FILE|-] [--ranges FILE] [--status-fd N] [--progress-ms N] [--idle] [FILE...]\n",
        stderr);
}

int main(int argc, char **argv) {
  // The read plan of an indexed extraction (read-plan.c): a mode of its own, before any of the below.
  if (argc > 1 && strcmp(argv[1], "--plan") == 0) return qe_read_plan_main(argc, argv);
  status_file = stderr;
  static const struct option longopts[] = {
      {"write", required_argument, 0, 'w'},      {"from", required_argument, 0, 'f'},
      {"to", required_argument, 0, 't'},         {"filter", required_argument, 0, 'F'},
      {"linktype", required_argument, 0, 'l'},   {"snaplen", required_argument, 0, 's'},
      {"list", required_argument, 0, 'L'},       {"status-fd", required_argument, 0, 'S'},
      {"progress-ms", required_argument, 0, 'p'}, {"help", no_argument, 0, 'h'},
      {"ranges", required_argument, 0, 'R'},     {"idle", no_argument, 0, 'I'},
      {0, 0, 0, 0},
  };
  const char *list_path = NULL, *ranges_path = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "w:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'w': opt.out_path = optarg; break;
    case 'f': opt.from_ns = parse_u64("--from", optarg); break;
    case 't': opt.to_ns = parse_u64("--to", optarg); break;
    case 'F': opt.filter = optarg; break;
    case 'l': opt.linktype = (long)parse_u64("--linktype", optarg); break;
    case 's': opt.snaplen = (long)parse_u64("--snaplen", optarg); break;
    case 'L': list_path = optarg; break;
    case 'R': ranges_path = optarg; break;
    case 'I': lower_priority(); break;
    case 'p': opt.progress_ms = (long)parse_u64("--progress-ms", optarg); break;
    case 'S': {
      int fd = (int)parse_u64("--status-fd", optarg);
      FILE *f = fd == 2 ? stderr : fdopen(fd, "w");
      if (!f) die(EXIT_USAGE, "--status-fd %d is not open for writing: %s", fd, strerror(errno));
      opt.status_fd = fd;
      status_file = f;
      break;
    }
    case 'h': usage(); return 0;
    default: usage(); return EXIT_USAGE;
    }
  }
  if (!opt.out_path) {
    usage();
    die(EXIT_USAGE, "-w OUT is required (a file, or - for standard output)");
  }
  // A record past what pcap's 32-bit seconds hold (a fraction of a second or more carried into
  // them) cannot be written without wrapping to 1970: it is out of range.
  if (opt.to_ns > QE_PCAP_MAX_TS_NS) opt.to_ns = QE_PCAP_MAX_TS_NS;
  if (opt.from_ns > opt.to_ns)
    die(EXIT_USAGE, "--from %" PRIu64 " is after --to %" PRIu64 ": swap them", opt.from_ns, opt.to_ns);

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);

  if (ranges_path) read_ranges(ranges_path);
  advised = calloc(nranges ? nranges : 1, sizeof *advised);
  if (!advised) die(EXIT_INTERNAL, "out of memory");
  if (list_path) read_list(list_path);
  size_t first_positional = nstreams;
  for (int i = optind; i < argc; i++) add_file(first_positional + (size_t)(i - optind), argv[i], false);

  if (opt.linktype >= 0) {
    linktype = (int)opt.linktype;
    linktype_source = "--linktype";
  }
  // Each stream's first file is opened now, so a link type mismatch or an unreadable input is
  // reported before an output exists.
  for (size_t i = 0; i < nstreams; i++) {
    struct stream *s = &streams[i];
    s->cap = READ_CHUNK;
    s->buf = malloc(s->cap);
    if (!s->buf) die(EXIT_INTERNAL, "out of memory");
    open_next_file(s);
  }
  cover_every_snaplen();
  if (linktype < 0) linktype = 1; // no input at all: an empty Ethernet capture
  if (opt.snaplen <= 0) opt.snaplen = QE_PCAP_CAPLEN_FLOOR;

  if (opt.filter && opt.filter[0]) {
    pcap_t *dead = pcap_open_dead_with_tstamp_precision(qe_linktype_to_dlt((uint32_t)linktype), (int)opt.snaplen, PCAP_TSTAMP_PRECISION_NANO);
    if (!dead) die(EXIT_INTERNAL, "pcap_open_dead failed");
    if (pcap_compile(dead, &filter_prog, opt.filter, 1, PCAP_NETMASK_UNKNOWN) != 0)
      die(EXIT_USAGE, "bad filter \"%s\": %s", opt.filter, pcap_geterr(dead));
    pcap_close(dead);
    have_filter = true;
    strip_outer_tag = linktype == DLT_EN10MB && !mentions_vlan(opt.filter);
  }

  out_buf = malloc(WRITE_CHUNK);
  if (!out_buf) die(EXIT_INTERNAL, "out of memory");
  open_output();
  uint8_t gh[GLOBAL_HEADER_LEN] = {0};
  put_le32(gh, QE_PCAP_MAGIC_NANO);
  put_le16(gh + 4, 2);
  put_le16(gh + 6, 4);
  put_le32(gh + 16, (uint32_t)opt.snaplen);
  put_le32(gh + 20, (uint32_t)linktype);
  out_append(gh, sizeof gh);

  next_progress_ms = now_ms() + (uint64_t)opt.progress_ms;
  merge();
  finish_output();

  int code = count.packets > 0 ? EXIT_OK_PACKETS : EXIT_EMPTY;
  fprintf(status_file, "{\"type\":\"done\",\"exit\":%d,\"linktype\":%d,\"snaplen\":%ld,", code, linktype, opt.snaplen);
  status_counts(status_file);
  fputs("}\n", status_file);
  fflush(status_file);
  return code;
}
