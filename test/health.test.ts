// Capture health for real: /metrics scraped during live capture and checked by promtool, the
// health state through `qe-packets status`, and the systemd contract on a real notify socket.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ConfigInput, cli, RunningCapture, sleep, startCapture, tempDir, writeConfig } from './lib/cli.js';
import { testFrames } from './lib/frames.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';
import { NotifySocket } from './lib/notify-socket.js';

let lab: Lab;
let dir: string;
const running: RunningCapture[] = [];
const sockets: NotifySocket[] = [];

beforeEach(async () => {
  lab = new Lab();
  dir = await tempDir();
});
afterEach(async () => {
  for (const r of running.splice(0)) if (r.proc.exitCode === null) await r.stop('SIGKILL');
  for (const s of sockets.splice(0)) s.close();
  await lab.cleanup();
});

const start = (config: ConfigInput) => startCapture(dir, config, running);

/** Samples of one metric family from the exposition text: labels → value. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

async function helperPid(iface: string): Promise<number> {
  return Number((await execa('pgrep', ['-f', `qe-capture --iface ${iface} `])).stdout.trim());
}

async function store(): Promise<string> {
  const s = join(dir, 'store');
  await execa('mkdir', ['-p', s]);
  return s;
}

describe('metrics', () => {
  it('serves every named metric with the true counts, and promtool finds nothing to fix', async () => {
    const link = await captureLink(lab, 'qeh0');
    const cap = await start({ interfaces: [link.capDev], paths: [await store()], file_size: '1MiB' });
    const url = await cap.metricsUrl();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const frames = testFrames({ count: 4000, seed: 21, sizes: [600] });
    await sendFrames(link.ns, link.genDev, frames, dir);
    await sleep(2500); // one helper report and one flush later
    const res = await fetch(url);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const l = `{interface="${link.capDev}"}`;
    expect(samples(text, 'qe_packets_captured_packets_total').get(l)).toBe(4000);
    expect(samples(text, 'qe_packets_captured_bytes_total').get(l)).toBeGreaterThan(4000 * 600);
    expect(samples(text, 'qe_packets_capture_up').get(l)).toBe(1);
    const drops = samples(text, 'qe_packets_dropped_packets_total');
    for (const reason of ['kernel', 'interface', 'writer', 'store_full'])
      expect(drops.get(`{interface="${link.capDev}",reason="${reason}"}`)).toBe(0);
    expect(samples(text, 'qe_packets_files_written_total').get(l)).toBeGreaterThanOrEqual(1);
    expect(samples(text, 'qe_packets_files_deleted_total').get('')).toBe(0);
    expect(samples(text, 'qe_packets_write_errors_total').get(l)).toBe(0);
    expect(samples(text, 'qe_packets_storage_used_bytes').get('')).toBeGreaterThan(4000 * 600);
    expect(samples(text, 'qe_packets_storage_capacity_bytes').get('')).toBe(2 ** 30);
    expect(samples(text, 'qe_packets_storage_free_bytes').get('')).toBeGreaterThan(0);
    const oldest = samples(text, 'qe_packets_oldest_packet_timestamp_seconds').get('')!;
    expect(Math.abs(oldest - Date.now() / 1000)).toBeLessThan(30);
    const retention = samples(text, 'qe_packets_retention_seconds').get('')!;
    expect(retention).toBeGreaterThan(0);
    expect(retention).toBeLessThan(30);
    expect(samples(text, 'qe_packets_state').get('')).toBe(0);
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(samples(text, 'qe_packets_build_info').get(`{version="${pkg.version}"}`)).toBe(1);
    expect(samples(text, 'process_resident_memory_bytes').get('')).toBeGreaterThan(0);

    const lint = await execa('promtool', ['check', 'metrics'], { input: text, reject: false });
    expect(lint.stdout + lint.stderr).toBe('');
    expect(lint.exitCode).toBe(0);
    expect((await fetch(url.replace('/metrics', '/nothing'))).status).toBe(404);
  });

  it('binds to loopback by default and says which setting to change when the port is taken', async () => {
    const link = await captureLink(lab, 'qeh1');
    const s = await store();
    const first = await start({ interfaces: [link.capDev], paths: [s] });
    const port = new URL(await first.metricsUrl()).port;
    const ss = await execa('ss', ['-ltnH', `sport = :${port}`]);
    expect(ss.stdout).toContain(`127.0.0.1:${port}`);
    const other = await tempDir();
    const path = await writeConfig(other, { interfaces: [link.capDev], paths: [s], metrics_listen: `127.0.0.1:${port}` });
    const res = await cli(['capture', '--config', path]);
    expect(res.exitCode).toBe(2);
    expect(res.all).toContain(`metrics.listen 127.0.0.1:${port}: cannot listen (the port is in use)`);
    // The same control socket: a second daemon on the same store is refused.
    const same = await writeConfig(other, { interfaces: [link.capDev], paths: [s], control_socket: join(dir, 'control.sock') });
    const res2 = await cli(['capture', '--config', same]);
    expect(res2.exitCode).toBe(2);
    expect(res2.all).toContain('another qe-packets daemon is running');
    expect(first.proc.exitCode).toBe(null);
  });
});

describe('health state', () => {
  it('qe-packets status reports ok with the figures, then critical naming the interface that went away', async () => {
    const a = await captureLink(lab, 'qeh2');
    const b = await captureLink(lab, 'qeh3');
    await start({ interfaces: [a.capDev, b.capDev], paths: [await store()] });
    await sendFrames(a.ns, a.genDev, testFrames({ count: 1000, seed: 3 }), dir);
    await sleep(2200);
    const socket = join(dir, 'control.sock');
    const json = await cli(['status', '--json', '--socket', socket]);
    expect(json.exitCode).toBe(0);
    const r = JSON.parse(json.stdout);
    expect(r.state).toBe('ok');
    expect(r.reasons).toEqual([]);
    const ia = r.figures.interfaces.find((i: { name: string }) => i.name === a.capDev);
    expect(ia.up).toBe(true);
    expect(ia.counters.written).toBe(1000);
    expect(r.figures.store.mode).toBe('circular');
    const human = await cli(['status', '--config', join(dir, 'config.yaml')]);
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toMatch(/: OK \(up /);
    expect(human.stdout).toMatch(new RegExp(`${a.capDev}\\s+up\\s+.*1,000`));
    expect(human.stdout).toMatch(/store\s+circular, .* of 1GiB used/);

    await execa('ip', ['link', 'del', b.capDev]);
    await sleep(1500);
    const down = await cli(['status', '--json', '--socket', socket]);
    expect(down.exitCode).toBe(2);
    const d = JSON.parse(down.stdout);
    expect(d.state).toBe('critical');
    expect(d.reasons).toEqual([expect.objectContaining({ level: 'critical', code: 'capture_down', interface: b.capDev })]);
    const text = await (await fetch(await running[0]!.metricsUrl())).text();
    expect(samples(text, 'qe_packets_state').get('')).toBe(2);
    expect(samples(text, 'qe_packets_capture_up').get(`{interface="${b.capDev}"}`)).toBe(0);
    expect((await cli(['status', '--socket', socket])).stdout).toMatch(new RegExp(`critical: ${b.capDev}: not capturing`));
  });

  it('turns warning, then critical, as the share of dropped packets crosses the thresholds', async () => {
    const link = await captureLink(lab, 'qeh4');
    await start({
      interfaces: [link.capDev],
      paths: [await store()],
      buffer: '1MiB',
      extra: 'health:\n  drops_warning: 0.1%\n  drops_critical: 50%\n  window: 30s',
    });
    const socket = join(dir, 'control.sock');
    // 1 in 10: a stalled helper overflows its ring while frames keep coming.
    await sendFrames(link.ns, link.genDev, testFrames({ count: 9000, seed: 5, sizes: [200] }), dir, { pps: 20_000 });
    const pid = await helperPid(link.capDev);
    process.kill(pid, 'SIGSTOP');
    await sendFrames(link.ns, link.genDev, testFrames({ count: 3000, seed: 6, sizes: [1514] }), dir);
    process.kill(pid, 'SIGCONT');
    await sleep(2500);
    const r = JSON.parse((await cli(['status', '--json', '--socket', socket])).stdout);
    const drops = r.figures.interfaces[0].counters.kernel_drops;
    expect(drops).toBeGreaterThan(0);
    expect(r.state).toBe('warning');
    expect(r.reasons[0]).toMatchObject({ level: 'warning', code: 'drops', interface: link.capDev });
    expect(r.reasons[0].message).toMatch(/% of packets dropped in the last \d+s \(warning above 0\.100%\)/);

    // Mostly drops now: above the critical share.
    process.kill(pid, 'SIGSTOP');
    await sendFrames(link.ns, link.genDev, testFrames({ count: 60_000, seed: 7, sizes: [1514] }), dir);
    process.kill(pid, 'SIGCONT');
    await sleep(2500);
    const c = await cli(['status', '--json', '--socket', socket]);
    expect(c.exitCode).toBe(2);
    expect(JSON.parse(c.stdout).reasons[0]).toMatchObject({ level: 'critical', code: 'drops' });
  });

  it('says clearly when no daemon answers', async () => {
    const res = await cli(['status', '--socket', join(dir, 'none.sock')]);
    expect(res.exitCode).toBe(3);
    expect(res.stderr).toContain('the daemon is not running');
    const json = await cli(['status', '--json', '--socket', join(dir, 'none.sock')]);
    expect(JSON.parse(json.stdout).state).toBe('unknown');
  });
});

describe('systemd notify protocol', () => {
  it('sends READY=1 only once every interface captures, WATCHDOG=1 while capture advances, STATUS= a summary, STOPPING=1 at the end', async () => {
    const notify = new NotifySocket(dir);
    sockets.push(notify);
    await notify.ready();
    const a = await captureLink(lab, 'qeh5');
    const b = await captureLink(lab, 'qeh6');
    const path = await writeConfig(dir, { interfaces: [a.capDev, b.capDev], paths: [await store()] });
    const cap = new RunningCapture(path, [], { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '1000000' });
    running.push(cap);
    const ready = await notify.waitFor('READY');
    // Both helpers had said they capture before READY=1 was sent.
    expect(cap.output).toContain(`${a.capDev}: capturing`);
    expect(cap.output).toContain(`${b.capDev}: capturing`);
    expect(notify.with('READY')).toHaveLength(1);
    expect(notify.with('WATCHDOG').filter((n) => n.at < ready.at)).toEqual([]);
    const status = notify.with('STATUS')[0]!.fields.STATUS!;
    expect(status).toMatch(new RegExp(`^ok; ${a.capDev} \\d+ pps .*; ${b.capDev} .*; store \\d+% of 1GiB`));

    // Pings keep coming while traffic flows and while the links are idle.
    await sendFrames(a.ns, a.genDev, testFrames({ count: 20_000, seed: 8 }), dir, { pps: 5000 });
    await sleep(2000);
    const since = Date.now();
    await sleep(3000);
    expect(notify.with('WATCHDOG').filter((n) => n.at >= since).length).toBeGreaterThanOrEqual(4);

    // A stalled helper: its reports stop, and so do the pings.
    const pid = await helperPid(b.capDev);
    process.kill(pid, 'SIGSTOP');
    await sleep(7000);
    const stalledFrom = Date.now();
    await sleep(3000);
    expect(notify.with('WATCHDOG').filter((n) => n.at >= stalledFrom)).toEqual([]);
    expect(cap.output).toMatch(new RegExp(`watchdog: not telling systemd we are alive: ${b.capDev}: no report from its capture helper`));
    process.kill(pid, 'SIGCONT');
    await sleep(2500);
    const resumed = Date.now();
    await sleep(2000);
    expect(notify.with('WATCHDOG').filter((n) => n.at >= resumed).length).toBeGreaterThanOrEqual(2);

    const res = await cap.stop();
    expect(res.exitCode).toBe(0);
    await sleep(200);
    expect(notify.with('STOPPING')).toHaveLength(1);
  });

});
