// The tables' CRC-32 (daemon/native/table-io.c: a slicing-by-8 loop for small pieces, carry-less
// multiplication folding for large ones where the CPU has it, zlib's otherwise) must be zlib's
// crc32 for every length, alignment and starting value: the TypeScript readers check the same
// bytes with node:zlib. A small C program links table-io.c and compares the two on random data.
import { execa } from 'execa';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { root } from './lib/cli.js';

const CHECK = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>
#include "table-io.h"

int main(void)
{
	enum { MAX = 1 << 20 };
	unsigned char *buf = malloc(MAX + 64);
	unsigned x = 12345;
	for (size_t i = 0; i < MAX + 64; i++)
		buf[i] = (unsigned char)((x = x * 1103515245u + 12345u) >> 16);
	/* Every length up to 4 KiB from several alignments, then random ones up to 1 MiB; each from
	 * zero and from a running value (a table's pieces are checked in turn). */
	long checked = 0, bad = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t n = 0; n < 20000; n++) {
			size_t len = pass == 0 ? n % 4097 : (size_t)((x = x * 1103515245u + 12345u) >> 8) % MAX;
			size_t off = pass == 0 ? n / 4097 : (x >> 3) % 64;
			uint32_t start = n & 1 ? (uint32_t)crc32(0, buf + 7, 100) : 0;
			uint32_t want = (uint32_t)crc32(start, buf + off, (uInt)len);
			uint32_t got = qe_crc32_more(start, buf + off, len);
			checked++;
			if (got != want && bad++ < 5)
				printf("len %zu off %zu start %08x: %08x, zlib %08x\n", len, off, start, got, want);
		}
	}
	printf("checked %ld, wrong %ld\n", checked, bad);
	free(buf);
	return bad != 0;
}
`;

describe('table CRC-32', () => {
  it('equals zlib crc32 for every length, alignment and starting value', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qe-crc-'));
    writeFileSync(join(dir, 'check.c'), CHECK);
    const native = join(root, 'daemon', 'native');
    await execa('cc', ['-O2', '-D_GNU_SOURCE', '-I', native, '-o', join(dir, 'check'), join(dir, 'check.c'), join(native, 'table-io.c'), '-lz']);
    const r = await execa(join(dir, 'check'), [], { reject: false });
    expect(r.stdout).toBe('checked 40000, wrong 0');
    expect(r.exitCode).toBe(0);
  });
});
