// The systemd unit as systemd's own tools judge it, and its least-privilege design for real: the
// daemon runs as the qe-packets user with no capability while only its capture helpers hold
// CAP_NET_RAW, handed out by qe-privsep exactly as the unit starts it.
import { chmod, chown, cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { renderUnit } from '../daemon/src/systemd/unit.js';
import { RunningCapture, readRecords, root, sleep, tempDir, writeConfig } from './lib/cli.js';
import { SPAWN_ANSWER_TIMEOUT_MS } from '../daemon/src/capture/launch.js';
import { testFrames } from './lib/frames.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';

const CAP_NET_RAW = 1n << 13n;

async function renderedUnit(dir: string): Promise<string> {
  const path = join(dir, 'qe-packets.service');
  await writeFile(path, renderUnit({ libDir: root.replace(/\/$/, ''), node: process.execPath }));
  return path;
}

describe('qe-packets.service', () => {
  it('passes systemd-analyze verify', async () => {
    const unit = await renderedUnit(await tempDir());
    const res = await execa('systemd-analyze', ['verify', unit], { reject: false, all: true });
    expect(res.all).toBe('');
    expect(res.exitCode).toBe(0);
  });

  it('rates 2.5 or lower in systemd-analyze security, with the hardening the issue names', async () => {
    const unit = await renderedUnit(await tempDir());
    const res = await execa('systemd-analyze', ['security', '--offline=true', unit], { reject: false, all: true });
    const level = Number(/Overall exposure level for qe-packets\.service: ([\d.]+)/.exec(res.all ?? '')?.[1]);
    expect(level).toBeLessThanOrEqual(2.5);
    const text = await readFile(unit, 'utf8');
    for (const line of ['Type=notify', 'User=qe-packets', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'PrivateTmp=yes', 'CapabilityBoundingSet=CAP_NET_RAW', 'WatchdogSec='])
      expect(text).toContain(line);
    expect(text).toMatch(/^RestrictAddressFamilies=.*AF_PACKET/m);
    expect(text).toMatch(/^ReadWritePaths=/m);
  });
});

describe('privilege separation (qe-privsep)', () => {
  let lab: Lab;
  let dir: string;
  let appRoot: string;
  const running: RunningCapture[] = [];

  beforeAll(async () => {
    await execa('sh', ['-c', 'id -u qe-packets >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin qe-packets']);
    // The service user must read the program; a checkout in a private home directory is copied.
    const readable = await execa('setpriv', ['--reuid=qe-packets', '--regid=qe-packets', '--clear-groups', 'test', '-r', join(root, 'build', 'daemon', 'src', 'cli.js')], { reject: false });
    appRoot = root;
    if (readable.exitCode !== 0) {
      appRoot = await tempDir('qe-app-');
      for (const part of ['package.json', 'build', 'node_modules']) await cp(join(root, part), join(appRoot, part), { recursive: true });
      await chmod(appRoot, 0o755);
    }
  });
  beforeEach(async () => {
    lab = new Lab();
    dir = await tempDir();
    await chmod(dir, 0o755);
  });
  afterEach(async () => {
    for (const r of running.splice(0)) if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
    await lab.cleanup();
  });

  async function capsOf(pid: number): Promise<{ uid: number; prm: bigint; eff: bigint; amb: bigint }> {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => /^(\w+):\s+(\S+)/m.exec(status.split('\n').find((l) => l.startsWith(`${name}:`)) ?? '')![2]!;
    return { uid: Number(field('Uid')), prm: BigInt(`0x${field('CapPrm')}`), eff: BigInt(`0x${field('CapEff')}`), amb: BigInt(`0x${field('CapAmb')}`) };
  }

  it('captures as the qe-packets user: the daemon holds no capability, only the helper holds CAP_NET_RAW', async () => {
    const link = await captureLink(lab, 'qep0');
    const store = join(dir, 'store');
    const run = join(dir, 'run');
    await mkdir(store);
    await mkdir(run);
    const { stdout: uid } = await execa('id', ['-u', 'qe-packets']);
    const { stdout: gid } = await execa('id', ['-g', 'qe-packets']);
    await chown(store, Number(uid), Number(gid));
    await chown(run, Number(uid), Number(gid));
    const config = await writeConfig(dir, { interfaces: [link.capDev], paths: [store], control_socket: join(run, 'control.sock') });
    await chmod(config, 0o644);

    const cap = new RunningCapture(config, [], {}, [
      'setpriv',
      '--reuid=qe-packets',
      '--regid=qe-packets',
      '--init-groups',
      '--no-new-privs',
      '--inh-caps=-all,+net_raw',
      '--ambient-caps=-all,+net_raw',
      '--bounding-set=-all,+net_raw',
      '--',
      join(appRoot, 'build', 'native', 'qe-privsep'),
      process.execPath,
      join(appRoot, 'build', 'daemon', 'src', 'cli.js'),
    ]);
    running.push(cap);
    await cap.waitFor(`${link.capDev}: capturing`);

    // setpriv and qe-privsep exec in place: the process started is the daemon, the main process.
    const daemon = await capsOf(cap.proc.pid!);
    expect(daemon.uid).toBe(Number(uid));
    expect(await readFile(`/proc/${cap.proc.pid}/cmdline`, 'utf8')).toContain('cli.js');
    expect({ prm: daemon.prm, eff: daemon.eff, amb: daemon.amb }).toEqual({ prm: 0n, eff: 0n, amb: 0n });
    const helperPid = Number((await execa('pgrep', ['-f', `qe-capture --iface ${link.capDev} `])).stdout.trim());
    const helper = await capsOf(helperPid);
    expect(helper.uid).toBe(Number(uid));
    expect(helper.eff).toBe(CAP_NET_RAW);
    expect(helper.prm).toBe(CAP_NET_RAW);

    const frames = testFrames({ count: 2000, seed: 41 });
    await sendFrames(link.ns, link.genDev, frames, dir);
    await sleep(1500);
    // The status socket works through the unprivileged daemon too.
    const status = await execa(process.execPath, [join(root, 'build', 'daemon', 'src', 'cli.js'), 'status', '--json', '--socket', join(run, 'control.sock')], { reject: false });
    expect(JSON.parse(status.stdout).figures.interfaces[0].counters.written).toBe(2000);

    // A helper that dies is reported through the spawner and started again.
    process.kill(helperPid, 'SIGKILL');
    await cap.waitFor(/retrying in 1s/);
    await cap.waitFor(/capturing \(link type[\s\S]*capturing \(link type/);
    const again = Number((await execa('pgrep', ['-f', `qe-capture --iface ${link.capDev} `])).stdout.trim());
    expect(again).not.toBe(helperPid);
    expect((await capsOf(again)).eff).toBe(CAP_NET_RAW);

    const res = await cap.stop();
    expect(res.exitCode).toBe(0);
    // The killed helper's file stays .part until the next start repairs it; its flushed packets are all there.
    // Capture files only: each has its index beside it (`.qeidx`).
    const names = (await readdir(store)).filter((f) => /\.pcap(\.part)?$/.test(f)).sort();
    expect(names.filter((f) => f.endsWith('.part'))).toHaveLength(1);
    const got = await readRecords(names.map((n) => join(store, n)));
    expect(got.map((r) => r.data)).toEqual(frames);
  });
});

describe('qe-privsep against requests it cannot serve', () => {
  const privsep = join(root, 'build', 'native', 'qe-privsep');
  const hex = (t: string) => Buffer.from(t).toString('hex');

  it('refuses a spawn request longer than its line buffer, whole and at once, and serves the next one', async () => {
    // A program run under qe-privsep, talking its protocol on QE_PRIVSEP_FD as the daemon does.
    const script = `
      const { Socket } = require('node:net');
      const s = new Socket({ fd: Number(process.env.QE_PRIVSEP_FD), readable: true, writable: true });
      let got = '';
      s.on('data', (d) => { got += d; if (got.split('\\n').length > 2) { process.stdout.write(got); process.exit(0); } });
      s.write('spawn 1 ${hex('/nonexistent/sock')} ' + '${hex('--filter')} ' + '41'.repeat(70000) + '\\n');
      s.write('spawn 2 ${hex('/nonexistent/sock')} ${hex('--help')}\\n');
      setTimeout(() => { process.stdout.write(got); process.exit(3); }, 5000);`;
    const res = await execa(privsep, [process.execPath, '-e', script], { reject: false, timeout: 20_000 });
    // E2BIG for the long one; ENOENT (its socket path does not exist) shows the next was read whole.
    expect(res.stdout.split('\n').filter(Boolean)).toEqual(['failed 1 7', 'failed 2 2']);
    expect(res.exitCode).toBe(0);
  });

  it('the daemon reports a refused request with its reason, at once', async () => {
    const launch = join(root, 'build', 'daemon', 'src', 'capture', 'launch.js');
    const script = `
      const { launchHelper } = await import(${JSON.stringify(launch)});
      const h = launchHelper(['--iface', 'lo', '--filter', 'host 10.0.0.1 or '.repeat(2000) + 'host 10.0.0.2']);
      let err = '';
      h.stderr.on('data', (d) => (err += d));
      const status = await h.exited;
      console.log(JSON.stringify({ status, err }));
      process.exit(0);`;
    const started = Date.now();
    const res = await execa(privsep, [process.execPath, '--input-type=module', '-e', script], { reject: false, timeout: 20_000 });
    expect(JSON.parse(res.stdout)).toEqual({
      status: { code: 127, signal: null },
      err: 'qe-privsep could not start qe-capture: the request is longer than qe-privsep accepts (64 KiB, arguments hex-encoded): shorten capture.filter or storage.paths\n',
    });
    expect(Date.now() - started).toBeLessThan(SPAWN_ANSWER_TIMEOUT_MS);
  });

  it("no program the daemon runs inherits the spawner's descriptor", async () => {
    const launch = join(root, 'build', 'daemon', 'src', 'capture', 'launch.js');
    const script = `
      const { readlinkSync } = await import('node:fs');
      const { execFileSync } = await import('node:child_process');
      const { launchHelper } = await import(${JSON.stringify(launch)});
      // Nothing else holds this process: waiting for the helper must (an import is just that).
      const h = launchHelper(['--help']); // the daemon's side of qe-privsep is set up
      await h.exited;
      const own = readlinkSync('/proc/self/fd/' + process.env.QE_PRIVSEP_FD);
      const child = execFileSync('sh', ['-c', 'for f in /proc/$$/fd/*; do readlink $f; done; true'], { encoding: 'utf8' });
      console.log(JSON.stringify({ own, child: child.trim().split('\\n') }));
      process.exit(0);`;
    const res = await execa(privsep, [process.execPath, '--input-type=module', '-e', script], { reject: false, timeout: 20_000 });
    const { own, child } = JSON.parse(res.stdout) as { own: string; child: string[] };
    expect(own).toMatch(/^socket:/);
    expect(child).not.toContain(own);
  });

  it('the daemon gives up on a spawner that does not answer, says so, and still stops', async () => {
    const dir = await tempDir();
    const store = join(dir, 'store');
    await mkdir(store);
    const config = await writeConfig(dir, { interfaces: ['lo'], buffer: '4MiB', paths: [store] });
    const cap = new RunningCapture(config, [], {}, [privsep, process.execPath, join(root, 'build', 'daemon', 'src', 'cli.js')]);
    // The spawner is the daemon's child (qe-privsep forks it, then execs the daemon in place):
    // stopped before the daemon, which takes far longer to start, asks it for anything.
    let spawner = 0;
    for (let i = 0; i < 200 && !spawner; i++) {
      const r = await execa('pgrep', ['-P', String(cap.proc.pid), '-x', 'qe-privsep'], { reject: false });
      spawner = Number(r.stdout.trim().split('\n')[0]);
      if (!spawner) await sleep(5);
    }
    expect(spawner).toBeGreaterThan(0);
    process.kill(spawner, 'SIGSTOP');
    try {
      await cap.waitFor(`qe-privsep did not answer the request to start qe-capture within ${SPAWN_ANSWER_TIMEOUT_MS / 1000}s`, SPAWN_ANSWER_TIMEOUT_MS + 15_000);
      const started = Date.now();
      cap.proc.kill('SIGTERM');
      // The stopped spawner holds the output pipes open: watch the daemon's process itself.
      while (existsSync(`/proc/${cap.proc.pid}/status`) && !(await readFile(`/proc/${cap.proc.pid}/status`, 'utf8').catch(() => '')).match(/^State:\s+Z/m)) {
        expect(Date.now() - started, 'the daemon did not stop').toBeLessThan(SPAWN_ANSWER_TIMEOUT_MS + 5000);
        await sleep(100);
      }
    } finally {
      process.kill(spawner, 'SIGKILL');
    }
    expect((await cap.proc).exitCode).toBe(0);
  }, 60_000);
});
