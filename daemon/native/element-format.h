/* The elements file and the numbers the element counters are read by: the daemon writes the file
 * (daemon/src/elements/helper-file.ts, the TypeScript copy of this header, held to it by
 * test/element-format.test.ts) and qe-capture reads it (`--elements PATH`, `set elements PATH`).
 *
 * The file is text, one item a line, '\n' ending each line:
 *   qe-elements 1                  first line: QE_ELEM_FILE_MAGIC, a space, QE_ELEM_FILE_VERSION
 *   element <i> <filter>           element i (0, 1, 2... in order), its BPF filter (libpcap syntax,
 *                                  the rest of the line; empty: every IP packet)
 *   custom <i> <k> <filter>        element i's k-th custom filter (0, 1... in order, after its
 *                                  element line)
 * At most QE_ELEM_MAX elements, QE_ELEM_MAX_CUSTOM custom filters each, a filter at most
 * QE_ELEM_FILTER_MAX bytes. Anything else (another first line, an index out of order, a filter
 * libpcap refuses) refuses the whole file: qe-capture keeps the set it had and says why.
 *
 * The counters (daemon/src/capture/protocol.ts, message `elements`, defines each) are kept per
 * element, cumulative since the set was loaded. An element's filter is run once per flow, on its
 * first packet, and decides for every packet of the flow, both directions (element-track.h).
 *
 * Handshake round trips go into a histogram of QE_ELEM_RTT_BUCKETS buckets, QE_ELEM_RTT_PER_DOUBLING
 * per power of two of microseconds: bucket b = floor(4 * log2(max(us, 1))), the last one holding
 * everything above. The fraction of a power of two is read in integers so both sides agree to the
 * microsecond: with msb the highest set bit of us and m = (us << 16) >> msb (in [65536, 131072)),
 * b = 4 * msb + (m >= Q1) + (m >= Q2) + (m >= Q3), Qk = ceil(2^(k/4) * 65536). Bucket b spans
 * [2^(b/4), 2^((b+1)/4)) us; the daemon reads a percentile as the geometric middle of its bucket
 * (within 9% of any value in it). */
#ifndef QE_ELEMENT_FORMAT_H
#define QE_ELEMENT_FORMAT_H

#define QE_ELEM_FILE_MAGIC "qe-elements"
#define QE_ELEM_FILE_VERSION 1
#define QE_ELEM_MAX 256
#define QE_ELEM_MAX_CUSTOM 8
#define QE_ELEM_FILTER_MAX 8192

/* A SYN (without ACK) that opened a flow and got neither a SYN-ACK nor an RST from the other end
 * this long after the first SYN is counted unanswered (retransmissions are the same attempt). */
#define QE_ELEM_SYN_TIMEOUT_MS 3000

#define QE_ELEM_RTT_BUCKETS 96
#define QE_ELEM_RTT_PER_DOUBLING 4
#define QE_ELEM_RTT_Q1 77936
#define QE_ELEM_RTT_Q2 92682
#define QE_ELEM_RTT_Q3 110218

#endif
