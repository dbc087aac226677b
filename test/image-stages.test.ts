// The appliance pipeline's stage bookkeeping: a rerun skips what is up to date and resumes where
// a build failed.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Stages } from '../image/src/stages.js';
import { tempDir } from './lib/cli.js';

describe('image build stages', () => {
  it('skip a stage whose inputs and outputs are unchanged, rerun it when an input or an output changes', async () => {
    const dir = await tempDir('qe-stages-');
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src', 'a.txt'), 'one');
    const output = join(dir, 'out.bin');
    let runs = 0;
    const stage = (stages: Stages) =>
      stages.run('convert', { paths: [join(dir, 'src')], values: { level: 10 } }, async () => {
        runs++;
        await writeFile(output, 'made');
        return [output];
      });
    await stage(new Stages(dir, join(dir, 'work')));
    const again = new Stages(dir, join(dir, 'work'));
    await stage(again);
    expect(runs).toBe(1);
    expect(again.records[0]).toMatchObject({ name: 'convert', skipped: true, seconds: 0 });
    await writeFile(join(dir, 'src', 'a.txt'), 'two');
    await stage(new Stages(dir, join(dir, 'work')));
    expect(runs).toBe(2);
    await rm(output);
    await stage(new Stages(dir, join(dir, 'work')));
    expect(runs).toBe(3);
  });

  it('name the failed stage and its log, and resume there: the stages before it are skipped', async () => {
    const dir = await tempDir('qe-stages-');
    const work = join(dir, 'work');
    const ran: string[] = [];
    const pipeline = async (failAt?: string) => {
      const stages = new Stages(dir, work);
      for (const name of ['package', 'packer', 'disks']) {
        await stages.run(name, { paths: [], values: name }, async () => {
          ran.push(name);
          if (name === failAt) throw new Error('qemu-img: No space left on device');
          const f = join(dir, `${name}.out`);
          await writeFile(f, name);
          return [f];
        });
      }
    };
    await expect(pipeline('disks')).rejects.toThrow(`stage disks failed (details in ${join(work, 'logs', 'disks.log')}; rerun to resume from this stage):\nqemu-img: No space left on device`);
    expect(await readFile(join(work, 'logs', 'disks.log'), 'utf8')).toContain('No space left on device');
    ran.length = 0;
    await pipeline();
    expect(ran).toEqual(['disks']);
  });
});
