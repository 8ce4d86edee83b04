// Browser end-to-end test of the aps dashboard, against a running `aps run` with an
// `[http]` table. Debian's Chromium (/usr/bin/chromium) driven by playwright-core: no
// browser download. crates/cli/tests/dashboard.rs starts the daemon and runs this.
//
// Environment:
//   APS_URL        base URL of the daemon's management plane (http://127.0.0.1:PORT)
//   APS_BIN        the aps binary, APS_CONFIG its config (for `aps jobs list --json`)
//   OUT_DIR        where the screenshots go (created)
//   APS_PAUSE_JOB  the job to pause and resume (default: the first job listed)
//   APS_RUN_JOB    the job to run now, APS_RUN_MARKER a text its output contains
//   APS_FAIL_JOB   optional: a job whose runs fail (its outcome badge must say so)
//   APS_RUN_CALENDAR optional: the exclusion calendar of APS_RUN_JOB (its page must
//                  show it with its action)
//   APS_START_ONLY_JOB optional: a job that runs only at the daemon's start (its Resume
//                  must be refused, the banner saying why, the job left paused)
//   APS_TOKEN      optional: a bearer token to sign in with through the form
//   APS_MODE       `operate` (default: the checks above, as a caller that may operate)
//                  or `read-token` (APS_TOKEN is a read-only token: sign in, a wrong
//                  token refused, no buttons, sign out)
//   CHROMIUM       the browser (default /usr/bin/chromium)
//
// Prints one line per check and a final `dashboard e2e: N passed, M failed`; exits 1 on
// any failure.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error(`dashboard e2e: cannot load playwright-core (${e.message}); run \`npm ci --prefix tests/browser\``);
  process.exit(2);
}

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`dashboard e2e: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const BASE = need('APS_URL').replace(/\/+$/, '');
const APS_BIN = need('APS_BIN');
const APS_CONFIG = need('APS_CONFIG');
const OUT_DIR = need('OUT_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 20_000;
const MODE = process.env.APS_MODE || 'operate';

mkdirSync(OUT_DIR, { recursive: true });

// ---- helpers ----------------------------------------------------------------------

function apsJobs() {
  const out = execFileSync(APS_BIN, ['jobs', 'list', '--json', '--config', APS_CONFIG], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000,
  });
  return JSON.parse(out);
}

async function waitUntil(what, fn, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const tid = (id) => `[data-testid="${id.replace(/["\\]/g, '\\$&')}"]`;

async function visible(page, testid, timeout = TIMEOUT) {
  const loc = page.locator(tid(testid));
  await loc.waitFor({ state: 'visible', timeout });
  return loc;
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

let passed = 0;
let failed = 0;
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message.split('\n').slice(0, 6).join('\n     ')}`);
  }
}

// ---- the run ----------------------------------------------------------------------

const expected = apsJobs();
if (!expected.length) {
  console.error('dashboard e2e: `aps jobs list` shows no job; the config needs some');
  process.exit(2);
}
const pauseJob = process.env.APS_PAUSE_JOB || expected[0].id;
const runJob = process.env.APS_RUN_JOB || '';
const marker = process.env.APS_RUN_MARKER || '';
const failJob = process.env.APS_FAIL_JOB || '';
const runCalendar = process.env.APS_RUN_CALENDAR || '';
const startOnlyJob = process.env.APS_START_ONLY_JOB || '';
// Runs of APS_RUN_JOB already in its history: a first attempt, its retry (attempt 2)
// and a run a backfill started.
const firstRun = process.env.APS_FIRST_RUN || '';
const retryRun = process.env.APS_RETRY_RUN || '';
const backfillRun = process.env.APS_BACKFILL_RUN || '';

const profile = mkdtempSync(join(tmpdir(), 'aps-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  timeout: 60_000,
});
const scriptErrors = [];
const failedRequests = [];
function watch(page) {
  page.on('pageerror', (e) => scriptErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // Refused tokens are part of the read-token checks; the browser logs each 401.
    if (MODE === 'read-token' && /status of 401/.test(m.text())) return;
    scriptErrors.push(`console: ${m.text()}`);
  });
  page.on('requestfailed', (r) => failedRequests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
}
// Keep requests on the daemon: the page must need nothing from elsewhere.
const outside = [];
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (url.startsWith(BASE) || url.startsWith('data:')) return route.continue();
  outside.push(url);
  return route.abort();
});

// Drops the browser's log lines, since index `before`, of the error responses with
// `status` that a step asked for: they are not script errors.
function forgetAsked(before, status) {
  const mine = scriptErrors.splice(before);
  scriptErrors.push(...mine.filter((m) => !m.includes(`status of ${status}`)));
}

const page = context.pages()[0] || await context.newPage();
watch(page);

async function signIn(token) {
  await page.locator(tid('token-input')).fill(token);
  await page.locator(tid('token-submit')).click();
}

async function readTokenSteps() {
  const token = need('APS_TOKEN');
  await step('the page asks for a token, and refuses a wrong one', async () => {
    await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
    await visible(page, 'login');
    check(await page.locator(tid('jobs-view')).isHidden(), 'the jobs show before signing in');
    await signIn('aps_wrong');
    const err = await visible(page, 'login-error');
    await waitUntil('the refusal to be shown', async () => /unknown token/.test(await err.textContent()));
    await page.screenshot({ path: join(OUT_DIR, 'login.png') });
  });

  await step('signed in with a read token: jobs, caller and role, no buttons', async () => {
    await signIn(token);
    for (const job of expected) await visible(page, `job-row-${job.id}`);
    await page.locator(tid('login')).waitFor({ state: 'hidden', timeout: TIMEOUT });
    const caller = await page.locator(tid('caller')).textContent();
    check(/ · read$/.test(caller), `the header shows '${caller}', expected the read role`);
    const buttons = await page.locator('[data-testid^="pause-"], [data-testid^="resume-"], [data-testid^="run-"]').count();
    check(buttons === 0, `${buttons} pause/resume/run buttons shown to a read token`);
    await page.locator(tid(`job-link-${expected[0].id}`)).click();
    await waitUntil('the job page', async () => (await page.locator(tid('job-title')).textContent()) === expected[0].id);
    await waitUntil('the job page to load', async () => (await page.locator(`${tid('job-options')} dt`).count()) > 0);
    const detailButtons = await page.locator('[data-testid^="detail-"]').count();
    check(detailButtons === 0, `${detailButtons} buttons on the job page for a read token`);
    check(await page.evaluate(() => sessionStorage.getItem('aps.token')) === token, 'the token is not kept in sessionStorage');
  });

  await step('sign out forgets the token and asks again', async () => {
    await (await visible(page, 'signout')).click();
    await visible(page, 'login');
    check(await page.evaluate(() => sessionStorage.getItem('aps.token')) === null, 'the token is still kept');
    check(await page.locator(tid('job-view')).isHidden(), 'the job page is still shown');
    await page.reload({ waitUntil: 'domcontentloaded' });
    await visible(page, 'login');
  });
}

async function operateSteps() {
  await step('the jobs table lists the config\'s jobs, with state, role, next runs and outcome strips', async () => {
    await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
    if (process.env.APS_TOKEN) {
      await visible(page, 'login');
      await signIn(process.env.APS_TOKEN);
    }
    for (const job of expected) await visible(page, `job-row-${job.id}`);
    const stateText = await (await visible(page, 'state')).textContent();
    check(stateText === 'running', `the scheduler state badge says '${stateText}', expected 'running'`);
    const caller = await page.locator(tid('caller')).textContent();
    check(/ · (operate|admin)$/.test(caller), `the header shows the caller '${caller}', expected a role that may operate`);
    for (const job of expected) {
      const row = page.locator(tid(`job-row-${job.id}`));
      const text = await row.textContent();
      check(text.includes(job.trigger), `row ${job.id}: the trigger '${job.trigger}' is not shown (row: ${text})`);
      // Names are shown as text, markup and all: nothing from the data becomes markup.
      if (job.name !== job.id) check(text.includes(job.name), `row ${job.id}: the name '${job.name}' is not shown as written (row: ${text})`);
      check(await row.locator('b, script, img').count() === 0, `row ${job.id}: data became markup`);
      if (!job.paused && job.next_run_time) {
        const next = await row.locator('.col-next').textContent();
        check(/in \d+ (s|min|h|d)|now|ago/.test(next), `row ${job.id}: next run '${next}' has no relative time`);
      }
    }
    // A job firing every second fills its strip of recent outcomes.
    const busy = expected.find((j) => j.last_run_at && !j.paused) || expected[0];
    await waitUntil(`the outcome strip of ${busy.id} to show at least 2 runs`, async () =>
      (await page.locator(`${tid(`strip-${busy.id}`)} .sq`).count()) >= 2);
    if (failJob) {
      await waitUntil(`the last-outcome badge of ${failJob} to say failure`, async () =>
        (await page.locator(tid(`outcome-${failJob}`)).getAttribute('data-outcome')) === 'failure');
      await waitUntil(`a red square in the strip of ${failJob}`, async () =>
        (await page.locator(`${tid(`strip-${failJob}`)} .sq[data-outcome="failure"]`).count()) >= 1);
    }
  });

  await step(`pause ${pauseJob}: paused in the table and in \`aps jobs list\``, async () => {
    await (await visible(page, `pause-${pauseJob}`)).click();
    await visible(page, `paused-${pauseJob}`);
    await visible(page, `resume-${pauseJob}`);
    await waitUntil(`aps jobs list to show ${pauseJob} paused`, () => {
      const j = apsJobs().find((x) => x.id === pauseJob);
      return j && j.paused === true && j.next_run_time === null;
    });
    // Still paused after a few polls (the page does not flip back).
    await page.waitForTimeout(2500);
    check(await page.locator(tid(`paused-${pauseJob}`)).isVisible(), 'the paused badge went away by itself');
  });

  await step(`resume ${pauseJob}: running again in the table and in \`aps jobs list\``, async () => {
    await (await visible(page, `resume-${pauseJob}`)).click();
    await visible(page, `pause-${pauseJob}`);
    await page.locator(tid(`paused-${pauseJob}`)).waitFor({ state: 'detached', timeout: TIMEOUT });
    await waitUntil(`aps jobs list to show ${pauseJob} resumed`, () => {
      const j = apsJobs().find((x) => x.id === pauseJob);
      return j && j.paused === false && typeof j.next_run_time === 'string';
    });
  });

  await step(`run ${runJob || '(APS_RUN_JOB)'} now: the run and its output on the job page`, async () => {
    check(runJob, 'APS_RUN_JOB is not set');
    await page.locator(tid(`job-link-${runJob}`)).click();
    await waitUntil('the job page', async () =>
      (await page.locator(tid('job-title')).textContent()) === runJob && page.url().endsWith(`#/jobs/${encodeURIComponent(runJob)}`));
    await waitUntil('5 next fire times', async () => (await page.locator(`${tid('job-next')} li`).count()) === 5);
    const options = await page.locator(tid('job-options')).textContent();
    check(options.includes('Max instances'), `the options miss 'Max instances': ${options}`);
    if (runCalendar) {
      const calendar = await page.locator(tid('opt-calendar')).textContent();
      check(calendar.startsWith(`${runCalendar} (skip): `) && calendar.length > `${runCalendar} (skip): `.length,
        `the job page does not show calendar '${runCalendar}' with its action and rules: ${calendar}`);
    }
    await (await visible(page, `detail-run-${runJob}`)).click();
    const toast = await visible(page, 'toast');
    const runId = await waitUntil('the run id in the notice', () => toast.getAttribute('data-run-id'));
    const row = await visible(page, `run-row-${runId}`);
    await waitUntil(`run ${runId} to finish with success`, async () => (await row.getAttribute('data-outcome')) === 'success');
    const message = await page.locator(tid(`run-message-${runId}`)).textContent();
    check(/run now/i.test(message), `the run's message '${message}' does not say it was run by hand`);
    await page.locator(tid(`run-summary-${runId}`)).click();
    const output = await visible(page, `run-output-${runId}`);
    const text = await output.textContent();
    check(!marker || text.includes(marker), `the run's output does not contain '${marker}': ${JSON.stringify(text)}`);
    // The open run stays open through the next polls.
    await page.waitForTimeout(2500);
    check(await page.locator(tid(`run-output-${runId}`)).isVisible(), 'the opened output closed itself on a refresh');
    await page.screenshot({ path: join(OUT_DIR, 'job-desktop.png'), fullPage: true });
  });

  if (retryRun || backfillRun) {
    await step('the job page marks a retry with its attempt and a backfilled run', async () => {
      if (retryRun) {
        await visible(page, `run-row-${retryRun}`);
        const mark = await (await visible(page, `run-attempt-${retryRun}`)).textContent();
        check(mark === '#2', `the retry's attempt mark is '${mark}', not '#2'`);
        check(await page.locator(tid(`run-backfill-${retryRun}`)).count() === 0, 'the retry is marked as a backfill');
      }
      if (backfillRun) {
        const mark = await (await visible(page, `run-backfill-${backfillRun}`)).textContent();
        check(mark === 'backfill', `the backfilled run's mark is '${mark}'`);
        check(await page.locator(tid(`run-attempt-${backfillRun}`)).count() === 0, 'a first attempt shows an attempt mark');
      }
      if (firstRun) {
        await visible(page, `run-row-${firstRun}`);
        const marks = await page.locator(`${tid(`run-row-${firstRun}`)} .run-mark`).count();
        check(marks === 0, `a first, scheduled run shows ${marks} mark(s)`);
      }
    });
  }

  await step('an API error is shown in the banner, and goes once the page is fine', async () => {
    const before = scriptErrors.length;
    await page.goto(`${BASE}/#/jobs/no-such-job`, { waitUntil: 'domcontentloaded' });
    const banner = await visible(page, 'banner');
    await waitUntil('the banner to name the missing job', async () => /no job 'no-such-job'/.test(await banner.textContent()));
    await page.goto(`${BASE}/#/`, { waitUntil: 'domcontentloaded' });
    await visible(page, `job-row-${pauseJob}`);
    await page.locator(tid('banner')).waitFor({ state: 'hidden', timeout: TIMEOUT });
    forgetAsked(before, 404);
    // The jobs page once the strips have filled a little more and the run made by hand
    // shows (the README's picture).
    await waitUntil('the strip of the job run by hand', async () =>
      !runJob || (await page.locator(`${tid(`strip-${runJob}`)} .sq`).count()) >= 1);
    await page.locator(tid('toast')).waitFor({ state: 'hidden', timeout: TIMEOUT });
    await page.screenshot({ path: join(OUT_DIR, 'jobs-desktop.png'), fullPage: true });
  });

  if (startOnlyJob) {
    await step(`resume ${startOnlyJob}, which runs only at start: refused, the banner says why, still paused`, async () => {
      const before = scriptErrors.length;
      await (await visible(page, `resume-${startOnlyJob}`)).click();
      const banner = await visible(page, 'banner');
      await waitUntil('the banner to say why', async () =>
        new RegExp(`resume ${startOnlyJob}: .*runs only when the daemon starts`).test(await banner.textContent()));
      await visible(page, `paused-${startOnlyJob}`);
      const job = apsJobs().find((x) => x.id === startOnlyJob);
      check(job && job.paused === true && job.next_run_time === null,
        `aps jobs list shows ${startOnlyJob} as ${JSON.stringify(job)}, expected paused with no next run`);
      forgetAsked(before, 409);
    });
  }

  await step('phone-sized screen (390x844): cards, no sideways scrolling', async () => {
    const phone = await context.newPage();
    watch(phone);
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
    for (const job of expected) await visible(phone, `job-row-${job.id}`);
    const busy = expected.find((j) => j.last_run_at && !j.paused) || expected[0];
    await waitUntil('a filled strip', async () => (await phone.locator(`${tid(`strip-${busy.id}`)} .sq`).count()) >= 2);
    const width = await phone.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 390, `the page is ${width} px wide at 390 px: it scrolls sideways`);
    const headVisible = await phone.locator('table.jobs thead').isVisible();
    check(!headVisible, 'the table header is still shown on a phone (no card layout)');
    const box = await phone.locator(tid(`job-row-${busy.id}`)).boundingBox();
    check(box && box.width <= 390, `a job card is ${box && box.width} px wide`);
    await visible(phone, `run-${pauseJob}`);
    await phone.waitForTimeout(300);
    await phone.screenshot({ path: join(OUT_DIR, 'jobs-phone.png'), fullPage: true });
    if (runJob) {
      await phone.goto(`${BASE}/#/jobs/${encodeURIComponent(runJob)}`, { waitUntil: 'domcontentloaded' });
      await waitUntil('the job page on a phone', async () => (await phone.locator(`${tid('job-history')} .run`).count()) >= 1);
      const w = await phone.evaluate(() => document.documentElement.scrollWidth);
      check(w <= 390, `the job page is ${w} px wide at 390 px: it scrolls sideways`);
      await phone.screenshot({ path: join(OUT_DIR, 'job-phone.png'), fullPage: true });
    }
    await phone.close();
  });

}

try {
  if (MODE === 'read-token') await readTokenSteps();
  else if (MODE === 'operate') await operateSteps();
  else throw new Error(`unknown APS_MODE '${MODE}'`);

  await step('no script errors, nothing fetched from outside the daemon', async () => {
    check(scriptErrors.length === 0, `script errors: ${scriptErrors.join('; ')}`);
    check(outside.length === 0, `requests outside ${BASE}: ${outside.join(', ')}`);
    const bad = failedRequests.filter((r) => !r.includes('ERR_ABORTED'));
    check(bad.length === 0, `failed requests: ${bad.join('; ')}`);
  });
} finally {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

console.log(`screenshots: ${OUT_DIR}`);
console.log(`dashboard e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
