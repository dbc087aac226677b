// Minimal DNS message encoding (RFC 1035) for the generator's query/answer pairs: one question,
// A or AAAA answers that point back at the question name by compression.

export const DNS_A = 1;
export const DNS_AAAA = 28;

export interface DnsQuestion {
  id: number;
  name: string;
  type: typeof DNS_A | typeof DNS_AAAA;
}

function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.split('.')) {
    const l = Buffer.from(label, 'ascii');
    if (l.length === 0 || l.length > 63) throw new RangeError(`bad DNS label in ${name}`);
    parts.push(Buffer.from([l.length]), l);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function header(id: number, flags: number, answers: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(answers, 6);
  return h;
}

function question(q: DnsQuestion): Buffer {
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(q.type, 0);
  tail.writeUInt16BE(1, 2); // class IN
  return Buffer.concat([encodeName(q.name), tail]);
}

export function dnsQuery(q: DnsQuestion): Buffer {
  return Buffer.concat([header(q.id, 0x0100 /* recursion desired */, 0), question(q)]);
}

/** An answer to `q` with one record per address (4 bytes for A, 16 for AAAA). */
export function dnsResponse(q: DnsQuestion, addresses: readonly Buffer[], ttl: number): Buffer {
  const answers = addresses.map((a) => {
    const rr = Buffer.alloc(12 + a.length);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question name right after the header
    rr.writeUInt16BE(q.type, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(a.length, 10);
    a.copy(rr, 12);
    return rr;
  });
  // Response, recursion desired and available, no error.
  return Buffer.concat([header(q.id, 0x8180, answers.length), question(q), ...answers]);
}
