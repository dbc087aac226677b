// The web console in a real browser (Debian's chromium, headless, driven by playwright-core)
// against a real daemon capturing on a veth pair and serving the API and the console: log in,
// counters moving with traffic, a range selected on the store's timeline, an extraction downloaded
// and read by capinfos, a wrong token refused; no script errors; screenshots under test-results/.
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCapture, cli, root as checkout, sleep, startCapture, tempDir } from './lib/cli.js';
import { frame } from './lib/fixture.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(checkout, 'test-results', 'console');

/** What the browser said that was not meant: script errors, and console errors other than the HTTP statuses the test provoked. */
class BrowserLog {
  errors: string[] = [];
  statuses: string[] = [];
  watch(page: Page): void {
    page.on('pageerror', (e) => this.errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      // Chromium reports every 4xx/5xx answer as a console error; those are checked one by one through `statuses`.
      if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of \d+/.test(m.text())) this.errors.push(`console: ${m.text()}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) this.statuses.push(`${r.status()} ${new URL(r.url()).pathname}`);
    });
  }
}

/** An element's text now, or null when it is not there (so expect.poll's timeout is the one that counts). */
const textOf = (page: Page, selector: string) => page.locator(selector).first().textContent({ timeout: 200 }).catch(() => null);

const UDP_SRC = '10.91.0.7';
const UDP_DST = '10.91.0.9';
const burst = (n: number) => Array.from({ length: n }, (_, i) => frame({ src: UDP_SRC, dst: UDP_DST, proto: 'udp', sport: 40000 + (i % 4), dport: 5353, payload: 200, fill: i & 0xff }));

describe('web console in chromium against the daemon', () => {
  let lab: Lab;
  let dir: string;
  let base: string;
  let token: string;
  let fingerprint: string;
  let config: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let daemon: RunningCapture;
  let link: Awaited<ReturnType<typeof captureLink>>;
  const running: RunningCapture[] = [];
  const log = new BrowserLog();
  const started = new Date(Math.floor(Date.now() / 1000) * 1000 - 1000);

  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: scripts/install-deps installs Debian's chromium`).toBe(true);
    expect(existsSync(join(checkout, 'build', 'console', 'index.html')), 'build/console is missing: run npm run build').toBe(true);
    lab = new Lab();
    dir = await tempDir('qe-console-');
    await mkdir(SHOTS, { recursive: true });
    // Tokens and the audit log in the test's directory, for the command and the daemon alike.
    process.env.QE_PACKETS_STATE_DIR = join(dir, 'state');
    process.env.QE_PACKETS_LOG_DIR = join(dir, 'log');
    await mkdir(process.env.QE_PACKETS_STATE_DIR);
    await mkdir(process.env.QE_PACKETS_LOG_DIR);
    const made = await cli(['token', 'create', 'console-test', '--role', 'analyst', '--json']);
    expect(made.exitCode, made.all).toBe(0);
    token = (JSON.parse(made.stdout) as { token: string }).token;

    link = await captureLink(lab, 'qecon0');
    const store = join(dir, 'store');
    await mkdir(store);
    // HTTPS with a self-signed certificate, as an appliance's first boot makes one: the browser
    // is told to go on (as a user who checked the fingerprint would), and the login page must show it.
    await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', 'api.key', '-out', 'api.crt', '-days', '2'], { cwd: dir });
    fingerprint = (await execa('openssl', ['x509', '-in', 'api.crt', '-noout', '-fingerprint', '-sha256'], { cwd: dir })).stdout.split('=')[1]!.trim();
    // api.listen: any free port on loopback, as the daemon logs it.
    daemon = await startCapture(dir, { interfaces: [link.capDev], paths: [store], flush_interval: '1s', file_duration: '20s', api_tls: { cert: join(dir, 'api.crt'), key: join(dir, 'api.key') } }, running);
    config = join(dir, 'config.yaml');
    await daemon.waitFor(/api: https:\/\/\S+/);
    base = /api: (https:\/\/\S+?)\/?(\s|$)/.exec(daemon.output)![1]!;
    // Something in the store before the browser looks at it.
    await sendFrames(link.ns, link.genDev, burst(500), dir, { pps: 1000 });

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true, timezoneId: 'Europe/Paris', ignoreHTTPSErrors: true });
    page = await context.newPage();
    log.watch(page);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    for (const r of running.splice(0)) if (r.proc.exitCode === null) await r.stop('SIGKILL');
    await execa('pkill', ['-9', '-f', 'qe-capture --iface qecon0 '], { reject: false });
    await lab?.cleanup();
    delete process.env.QE_PACKETS_STATE_DIR;
    delete process.env.QE_PACKETS_LOG_DIR;
  });

  it('refuses a wrong token with the daemon\'s message and keeps the login page, which shows the certificate\'s fingerprint', async () => {
    await page.goto(`${base}/`);
    await expect.poll(() => textOf(page, '[data-testid=fingerprint]'), { timeout: 10_000 }).toBe(fingerprint);
    await page.locator('#token').fill(`qep_${'A'.repeat(43)}`);
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => textOf(page, '[data-testid=login-error]'), { timeout: 10_000 }).toMatch(/token/i);
    expect(await page.locator('#token').isVisible()).toBe(true);
    expect(await page.evaluate(() => sessionStorage.getItem('qe-packets.token'))).toBeNull();
    expect(log.statuses).toEqual(['401 /api/v1/whoami']);
    log.statuses = [];
    await page.screenshot({ path: join(SHOTS, 'login-refused.png') });
  });

  it('logs in with a token kept in sessionStorage only, and the counters move while traffic flows', async () => {
    await page.goto(`${base}/`);
    await page.locator('#token').fill(token);
    await page.getByRole('button', { name: 'Log in' }).click();
    const written = page.locator(`[data-iface="${link.capDev}"] [data-testid=written]`);
    await written.waitFor({ timeout: 15_000 });
    expect(await page.evaluate(() => [sessionStorage.getItem('qe-packets.token'), localStorage.length, document.cookie])).toEqual([token, 0, '']);
    // No Elements page: this daemon has no elements configured.
    expect(await page.locator('nav a').allTextContents()).toEqual(['Overview', 'Traffic', 'Extraction']);
    const count = async () => Number((await written.textContent())!.replace(/\D/g, ''));
    const before = await count();
    expect(before).toBeGreaterThanOrEqual(500);
    const flowing = sendFrames(link.ns, link.genDev, burst(6000), dir, { pps: 1000 });
    // The status is polled every 5 s: within the 6 s of traffic the figures move.
    await expect.poll(count, { timeout: 15_000, interval: 500 }).toBeGreaterThan(before);
    await expect.poll(async () => (await page.locator(`[data-iface="${link.capDev}"] [data-testid=pps]`).textContent()) ?? '', { timeout: 15_000, interval: 500 }).toMatch(/^[1-9][\d,.]* pkt\/s$/);
    await flowing;
    await expect.poll(count, { timeout: 15_000, interval: 500 }).toBeGreaterThanOrEqual(6500);
    expect(await written.textContent()).toMatch(/^\d{1,3}(,\d{3})+ packets$/);
    // Times in UTC, the browser's own zone on hover.
    const t = page.locator('time').first();
    expect(await t.textContent()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    expect(await t.getAttribute('title')).toMatch(/^local time: /);
    await page.screenshot({ path: join(SHOTS, 'overview.png'), fullPage: true });
  }, 60_000);

  it('selects a range on the store timeline and shows the top tables for it', async () => {
    await page.goto(`${base}/#/traffic`);
    const over = page.locator('[data-testid=timeline] .u-over');
    await over.waitFor({ timeout: 30_000 });
    expect(await page.locator('[data-testid=range]').textContent()).toBe('The whole retention');
    await expect.poll(() => textOf(page, '[data-testid=top-host] tbody'), { timeout: 30_000 }).toContain(UDP_SRC);
    // The timeline is drawn from the store's files: all the packets sent so far are in it.
    await expect.poll(async () => Number(/ in ([\d,]+) packets/.exec((await textOf(page, '[data-testid=timeline-summary]')) ?? '')?.[1]?.replace(/,/g, '')), { timeout: 15_000 }).toBeGreaterThanOrEqual(6500);
    const box = (await over.boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.05, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.98, box.y + box.height / 2, { steps: 8 });
    await page.mouse.up();
    const range = page.locator('[data-testid=range]');
    await expect.poll(() => textOf(page, '[data-testid=range]'), { timeout: 10_000 }).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC – \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    // What was dragged: most of the timeline, not all of it.
    const [selFrom, selTo] = (await textOf(page, '[data-testid=range]'))!.split(' – ').map((t) => Date.parse(t.replace(' UTC', 'Z').replace(' ', 'T')));
    const [allFrom, allTo] = [...(await textOf(page, '[data-testid=timeline-summary]'))!.matchAll(/(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC/g)].map((m) => Date.parse(`${m[1]!.replace(' ', 'T')}Z`));
    expect(selTo! - selFrom!).toBeGreaterThan(0.8 * (allTo! - allFrom!));
    expect(selTo! - selFrom!).toBeLessThan(allTo! - allFrom!);
    await expect.poll(() => textOf(page, '[data-testid=top-host] tbody'), { timeout: 30_000 }).toContain(UDP_SRC);
    await expect.poll(() => textOf(page, '[data-testid=top-port] tbody'), { timeout: 30_000 }).toContain('5353');
    await expect.poll(() => textOf(page, '[data-testid=top-proto] tbody'), { timeout: 30_000 }).toContain('udp');
    await page.screenshot({ path: join(SHOTS, 'traffic.png'), fullPage: true });
  }, 90_000);

  it('reports a filter libpcap refuses as it is typed, with the daemon\'s words, and offers no download for it', async () => {
    await page.goto(`${base}/#/extraction?${new URLSearchParams({ from: started.toISOString(), to: new Date().toISOString() })}`);
    const filter = page.locator('input[name=filter]');
    await filter.fill('udp port 5353');
    await page.locator('[data-testid=estimate]').waitFor({ timeout: 15_000 });
    try {
      await filter.fill('udp port 5353 and (');
      await expect.poll(() => textOf(page, '[data-testid=plan-error]'), { timeout: 15_000 }).toMatch(/filter/i);
      expect(await page.getByRole('button', { name: 'Download pcap' }).isDisabled()).toBe(true);
      expect(log.statuses.length).toBeGreaterThan(0);
      expect(log.statuses.every((s) => s === '400 /api/v1/explain')).toBe(true);
    } finally {
      log.statuses = log.statuses.filter((s) => s !== '400 /api/v1/explain');
    }
  }, 60_000);

  it('downloads the extraction (read by capinfos, the same bytes as the CLI) and lists it from the audit log', async () => {
    const from = started.toISOString();
    const to = new Date().toISOString();
    await page.goto(`${base}/#/extraction?${new URLSearchParams({ from, to })}`);
    await page.locator('input[name=filter]').fill('udp port 5353');
    await expect.poll(() => textOf(page, '[data-testid=estimate]'), { timeout: 15_000 }).toMatch(/B \([\d,]+ packets at most\)/);
    expect(await page.locator('[data-testid=plan]').textContent()).toContain('port 5353');

    const downloading = page.waitForEvent('download', { timeout: 60_000 });
    await page.getByRole('button', { name: 'Download pcap' }).click();
    const download = await downloading;
    // The browser's own download of a single-use link: the page holds none of it.
    expect(download.url()).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/api\/v1\/extract\/download\?ticket=qet_[A-Za-z0-9_-]{43}$/);
    const saved = join(dir, 'console.pcap');
    await download.saveAs(saved);
    expect(download.suggestedFilename()).toMatch(/^qe-packets_\d{8}T\d{6}Z_\d{8}T\d{6}Z\.pcap$/);

    const info = await execa('capinfos', ['-M', '-c', '-T', saved], { reject: false, all: true });
    expect(info.exitCode, info.all).toBe(0);
    const packets = Number(info.stdout.trim().split('\n').at(-1)!.split('\t').at(-1));
    expect(packets).toBeGreaterThanOrEqual(6500);
    const cliOut = join(dir, 'cli.pcap');
    const r = await cli(['extract', '--config', config, '--from', from, '--to', to, '--filter', 'udp port 5353', '-w', cliOut]);
    expect(r.exitCode, r.all).toBe(0);
    expect((await readFile(saved)).equals(await readFile(cliOut))).toBe(true);

    await expect.poll(() => textOf(page, '[data-testid=download-state]'), { timeout: 10_000 }).toMatch(/^Download started/);
    // The link was used once: following it again is refused.
    const again = await page.evaluate(async (url) => (await fetch(url)).status, download.url());
    expect(again).toBe(401);
    log.statuses = log.statuses.filter((st) => st !== '401 /api/v1/extract/download');
    await expect.poll(() => textOf(page, '[data-testid=audit] tbody'), { timeout: 15_000 }).toContain('udp port 5353');
    expect(await page.locator('[data-testid=audit] tbody tr').first().textContent()).toContain('console-test');
    await page.screenshot({ path: join(SHOTS, 'extraction.png'), fullPage: true });
  }, 120_000);

  it('a viewer token sees overview and traffic; extraction is hidden, and refused with the role it needs', async () => {
    const made = await cli(['token', 'create', 'console-viewer', '--role', 'viewer', '--json']);
    expect(made.exitCode, made.all).toBe(0);
    const viewerToken = (JSON.parse(made.stdout) as { token: string }).token;
    // A context of its own: another browser session, with its own sessionStorage.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
    const vlog = new BrowserLog();
    try {
      const v = await ctx.newPage();
      vlog.watch(v);
      await v.goto(`${base}/`);
      await v.locator('#token').fill(viewerToken);
      await v.getByRole('button', { name: 'Log in' }).click();
      await v.locator(`[data-iface="${link.capDev}"] [data-testid=written]`).waitFor({ timeout: 15_000 });
      expect(await v.locator('nav a').allTextContents()).toEqual(['Overview', 'Traffic']);
      await v.goto(`${base}/#/traffic`);
      await expect.poll(() => textOf(v, '[data-testid=top-host] tbody'), { timeout: 30_000 }).toContain(UDP_SRC);
      expect(await v.getByText('extract this range').count()).toBe(0);
      await v.screenshot({ path: join(SHOTS, 'viewer-traffic.png'), fullPage: true });
      // A link to the extraction page (shared by an analyst): told why, and no form.
      await v.goto(`${base}/#/extraction?from=2026-01-01T00:00:00Z`);
      await expect.poll(() => textOf(v, '[data-testid=forbidden]'), { timeout: 10_000 }).toBe(
        'Extraction needs a token of role analyst or admin: console-viewer has role viewer. Ask for an analyst token (qe-packets token create NAME --role analyst).',
      );
      expect(await v.locator('input[name=filter]').count()).toBe(0);
      expect(await v.getByRole('button', { name: 'Download pcap' }).count()).toBe(0);
      await v.screenshot({ path: join(SHOTS, 'viewer-extraction-refused.png'), fullPage: true });
      // Asked directly with the session's token, the daemon refuses too, saying why.
      const asked = await v.evaluate(async () => {
        const r = await fetch('/api/v1/extract/link?from=15m%20ago', { method: 'POST', headers: { authorization: `Bearer ${sessionStorage.getItem('qe-packets.token')}` } });
        return { status: r.status, body: (await r.json()) as { error: { message: string } } };
      });
      expect(asked).toEqual({ status: 403, body: { error: { code: 'forbidden', message: 'token console-viewer has role viewer: this needs analyst or above' } } });
      expect(vlog.errors).toEqual([]);
      // The page itself asked for nothing its role may not have (no audit log, no extraction).
      expect(vlog.statuses).toEqual(['403 /api/v1/extract/link']);
    } finally {
      await ctx.close();
    }
  }, 90_000);

  it('fits a phone-sized window: no page wider than the screen', async () => {
    // The same tab: the token is in its sessionStorage, which another tab would not see.
    const phone = page;
    await phone.setViewportSize({ width: 390, height: 844 });
    for (const name of ['overview', 'traffic', 'extraction']) {
      await phone.goto(`${base}/#/${name}`);
      await phone.locator('main section').first().waitFor({ timeout: 15_000 });
      await sleep(1000);
      expect(await phone.evaluate(() => document.documentElement.scrollWidth), name).toBeLessThanOrEqual(390);
      await phone.screenshot({ path: join(SHOTS, `phone-${name}.png`), fullPage: true });
    }
  }, 90_000);

  it('said nothing wrong in the browser console', () => {
    expect(log.errors).toEqual([]);
    expect(log.statuses).toEqual([]);
  });

  it('runs under the Content-Security-Policy: an inline script is refused by the browser', async () => {
    const violation = await page.evaluate(
      () =>
        new Promise<string>((resolve) => {
          document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), { once: true });
          const s = document.createElement('script');
          s.textContent = 'window.inlineRan = true';
          document.body.append(s);
          setTimeout(() => resolve('none'), 2000);
        }),
    );
    expect(violation).toMatch(/^script-src/);
    expect(await page.evaluate(() => (window as unknown as { inlineRan?: boolean }).inlineRan)).toBeUndefined();
  });
});
