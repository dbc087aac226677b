// The shipped alert rules and dashboard: checked and unit-tested by promtool, and evaluated by a
// real Prometheus server scraping a capturing daemon.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunningCapture, root, sleep, startCapture, tempDir } from './lib/cli.js';
import { testFrames } from './lib/frames.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';
import { PrometheusServer } from './lib/prometheus.js';

const monitoring = join(root, 'daemon', 'monitoring');
const rulesFile = join(monitoring, 'qe-packets.rules.yml');

interface Dashboard {
  panels: { title: string; targets: { expr: string }[] }[];
  templating: { list: { name: string }[] };
}

async function dashboardExprs(): Promise<{ title: string; expr: string }[]> {
  const d = JSON.parse(await readFile(join(monitoring, 'grafana-dashboard.json'), 'utf8')) as Dashboard;
  // Grafana's variables, replaced as Grafana would for "All" and a 1s scrape interval.
  const concrete = (e: string) => e.replaceAll('$__rate_interval', '10s').replaceAll('$instance', '.*').replaceAll('$interface', '.*');
  return d.panels.flatMap((p) => p.targets.map((t) => ({ title: p.title, expr: concrete(t.expr) })));
}

describe('alert rules and dashboard (promtool)', () => {
  it('promtool checks the rules and their unit tests pass', async () => {
    const check = await execa('promtool', ['check', 'rules', rulesFile], { reject: false, all: true });
    expect(check.all).toMatch(/SUCCESS: 11 rules found/);
    expect(check.exitCode).toBe(0);
    const unit = await execa('promtool', ['test', 'rules', 'qe-packets.rules.test.yml'], { cwd: monitoring, reject: false, all: true });
    expect(unit.all).toMatch(/SUCCESS/);
    expect(unit.exitCode).toBe(0);
  });

  it('names every condition the issue asks for', async () => {
    const rules = (parseYaml(await readFile(rulesFile, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups[0]!.rules;
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining(['QePacketsCaptureDown', 'QePacketsDrops', 'QePacketsRetentionBelowTarget', 'QePacketsLinearStoreNearlyFull', 'QePacketsWriteErrors', 'QePacketsQualeventBacklog', 'QePacketsQualeventDropped', 'QePacketsElementCritical', 'QePacketsElementWarning']),
    );
    expect(rules.find((r) => r.alert === 'QePacketsDrops')!.expr).toMatch(/> 0\.001/);
  });

  it('every dashboard query is valid PromQL', async () => {
    const dir = await tempDir();
    const exprs = await dashboardExprs();
    expect(exprs.length).toBeGreaterThan(10);
    const file = join(dir, 'dashboard-as-rules.yml');
    await writeFile(file, stringifyYaml({ groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:panel_${i}`, expr: e.expr })) }] }));
    const check = await execa('promtool', ['check', 'rules', file], { reject: false, all: true });
    expect(check.all).toMatch(new RegExp(`SUCCESS: ${exprs.length} rules found`));
  });
});

describe('a real Prometheus scraping a capturing daemon', () => {
  let lab: Lab;
  let dir: string;
  const running: RunningCapture[] = [];
  let prom: PrometheusServer | undefined;
  beforeEach(async () => {
    lab = new Lab();
    dir = await tempDir();
  });
  afterEach(async () => {
    prom?.stop();
    for (const r of running.splice(0)) if (r.proc.exitCode === null) await r.stop('SIGKILL');
    await lab.cleanup();
  });

  it('measures the capture rate actually sent, loads the alert rules, and answers every dashboard query', async () => {
    const link = await captureLink(lab, 'qem0');
    const store = join(dir, 'store');
    await execa('mkdir', ['-p', store]);
    // One element, so the element panels have series: its silence rule gives it a value (and the
    // state ok) from the start, whatever the test frames are.
    const elements = ['elements:', '  - id: qem-web', '    filter: "tcp port 80"', '    indicators:', '      silence: {critical: 10m}'].join('\n');
    const cap = await startCapture(dir, { interfaces: [link.capDev], paths: [store], extra: elements }, running);
    const target = new URL(await cap.metricsUrl()).host;
    prom = new PrometheusServer(dir, target, [rulesFile]);
    await prom.start();
    await sleep(2000);

    // 2000 packets a second for 15 seconds.
    const pps = 2000;
    await sendFrames(link.ns, link.genDev, testFrames({ count: pps * 15, seed: 31, sizes: [300] }), dir, { pps });
    const ended = Date.now() / 1000;
    await sleep(3000);
    // tcpreplay takes a moment to start: measure over the last 8 seconds of the sending.
    const when = ended - 2;
    const [rate] = await prom.query(`rate(qe_packets_captured_packets_total{interface="${link.capDev}"}[8s])`, when);
    expect(Number(rate!.value[1])).toBeGreaterThan(pps * 0.9);
    expect(Number(rate!.value[1])).toBeLessThan(pps * 1.1);
    const [total] = await prom.query(`qe_packets_captured_packets_total{interface="${link.capDev}"}`);
    expect(Number(total!.value[1])).toBe(pps * 15);

    const groups = await prom.api<{ groups: { rules: { name: string; health: string; state: string }[] }[] }>('rules');
    const rules = groups.groups.flatMap((g) => g.rules);
    // Every rule of the shipped file is loaded (the file's count, so a new rule needs no edit here).
    const shipped = (parseYaml(await readFile(rulesFile, 'utf8')) as { groups: { rules: unknown[] }[] }).groups.flatMap((g) => g.rules);
    expect(shipped.length).toBeGreaterThanOrEqual(11);
    expect(rules.length).toBe(shipped.length);
    for (const r of rules) expect(r.health).toBe('ok');
    expect(rules.filter((r) => r.state !== 'inactive')).toEqual([]);

    const [element] = await prom.query('qe_packets_element_state{element="qem-web"}');
    expect(element?.value[1]).toBe('0');

    for (const { title, expr } of await dashboardExprs()) {
      const result = await prom.query(expr).catch((e: Error) => {
        throw new Error(`panel "${title}": ${e.message}`);
      });
      // Retention, files per hour and the like have values from the first scrape on.
      if (!/Write errors/.test(title)) expect(result.length, `panel "${title}": ${expr}`).toBeGreaterThan(0);
    }
  });
});
