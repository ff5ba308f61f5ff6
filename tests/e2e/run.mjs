// Browser end-to-end tests of the web client: the real server (debug binary, fresh data folder,
// small demo network) and headless Chromium driven by playwright-core, one browser context per
// person. Screenshots go to target/e2e-artifacts/. Run by tests/run.sh; alone:
//   cargo build -p telehealth-server && (cd tests/e2e && npm ci && node run.mjs)
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import en from '../../web-client/js/i18n/en.js';
import vi from '../../web-client/js/i18n/vi.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.TELEHEALTH_BIN || join(ROOT, 'target', 'debug', 'telehealth');
const ART = join(ROOT, 'target', 'e2e-artifacts');
const CHROMIUM = process.env.CHROMIUM || ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find(existsSync);
const PASSWORD = 'telehealth-demo';
// Words that are the same in both languages.
const SAME_IN_BOTH = new Set(['Camera', 'Camera {n}']);

mkdirSync(ART, { recursive: true });
const results = [];
const fail = (msg) => { throw new Error(msg); };
const ok = (cond, msg) => { if (!cond) fail(msg); };

async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, status: 'passed' });
    console.log(`ok      ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name, status: 'failed' });
    console.log(`FAILED  ${name}\n        ${String(e && e.stack || e).split('\n').slice(0, 6).join('\n        ')}`);
  }
}
function pending(name, why) {
  results.push({ name, status: 'pending' });
  console.log(`pending ${name}: ${why}`);
}

// --- the server --------------------------------------------------------------------------------
const dataDir = mkdtempSync(join(tmpdir(), 'th-e2e-'));
const port = 20000 + Math.floor(Math.random() * 20000);
const BASE = `http://127.0.0.1:${port}`;
const server = spawn(BIN, ['--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, 'demo', '--care-centres', '20', '--patients-per-centre', '2'],
  { env: { ...process.env, RUST_LOG: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
let serverLog = '';
server.stderr.on('data', (d) => { serverLog = (serverLog + d).slice(-20000); });
async function waitReady() {
  for (let i = 0; i < 240; i++) {
    try { if ((await fetch(`${BASE}/readyz`)).ok) return; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  fail(`server did not start\n${serverLog}`);
}

// --- helpers -------------------------------------------------------------------------------------
const FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', '--allow-loopback-in-peer-connection'];
let browser;
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

async function person(username, { locale = 'vi-VN', viewport = DESKTOP } = {}) {
  const context = await browser.newContext({ locale, viewport, timezoneId: 'Europe/London', permissions: ['camera', 'microphone'] });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`        [${username} page error] ${e.message}`));
  await page.goto(`${BASE}/signin`);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('form button[type=submit]');
  await page.waitForURL(`${BASE}/`);
  await page.waitForSelector('main h1');
  await page.waitForFunction(() => !document.querySelector('main .loading'));
  return { context, page };
}

const shot = (page, name) => page.screenshot({ path: join(ART, `${name}.png`), fullPage: true });

/** In Vietnamese: no key missing from the dictionary, no English text, no raw key on screen. */
async function checkVietnamese(page, screen) {
  const enValues = [...new Set(Object.values(en))].filter((v) => !SAME_IN_BOTH.has(v) && !/\{\w+\}/.test(v));
  const r = await page.evaluate((values) => {
    const enSet = new Set(values);
    const texts = [];
    const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (w.nextNode()) { const s = w.currentNode.textContent.trim(); if (s && !w.currentNode.parentElement.closest('option[value=en]')) texts.push(s); }
    document.querySelectorAll('[aria-label],[placeholder],[title]').forEach((e) => ['aria-label', 'placeholder', 'title'].forEach((a) => { const v = e.getAttribute(a); if (v) texts.push(v.trim()); }));
    return { lang: document.documentElement.lang, missing: [...(window.__i18nMissing || [])], english: texts.filter((s) => enSet.has(s)), keys: texts.filter((s) => /^[a-z]+\.[a-z0-9_.]+$/.test(s)) };
  }, enValues);
  ok(r.lang === 'vi', `${screen}: the page is not in Vietnamese (${r.lang})`);
  ok(!r.missing.length, `${screen}: keys missing from the dictionary: ${r.missing.join(', ')}`);
  ok(!r.english.length, `${screen}: English text on the Vietnamese screen: ${r.english.join(' | ')}`);
  ok(!r.keys.length, `${screen}: untranslated keys shown: ${r.keys.join(', ')}`);
}

async function apiAs(page, method, path, body) {
  const res = await page.request.fetch(`${BASE}/api/v1${path}`, { method, data: body, headers: { origin: BASE } });
  return { status: res.status(), body: await res.json().catch(() => null) };
}

// --- the tests -----------------------------------------------------------------------------------
async function main() {
  await waitReady();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });

  await test('dictionaries: Vietnamese and English have the same keys, and Vietnamese translates each', async () => {
    const a = Object.keys(en); const b = Object.keys(vi);
    ok(a.length > 100, 'dictionary too small');
    ok(!a.filter((k) => !(k in vi)).length, `missing in vi: ${a.filter((k) => !(k in vi))}`);
    ok(!b.filter((k) => !(k in en)).length, `missing in en: ${b.filter((k) => !(k in en))}`);
    const same = a.filter((k) => vi[k] === en[k] && !SAME_IN_BOTH.has(en[k]));
    ok(!same.length, `not translated: ${same}`);
  });

  await test('sign-in per role lands on that role\'s home, in Vietnamese by default', async () => {
    const homes = { admin: 'Quản trị', dieuphoi: 'Lịch khám', bacsi: 'Danh sách khám hôm nay', tramyte: 'Yêu cầu hội chẩn từ xa', benhnhan: 'Lịch khám của bạn' };
    for (const [user, heading] of Object.entries(homes)) {
      const { context, page } = await person(user);
      await page.waitForFunction(() => !document.querySelector('main .loading'));
      const h1 = (await page.textContent('main h1')).trim();
      ok(h1 === heading, `${user}: home heading ${JSON.stringify(h1)}, expected ${JSON.stringify(heading)}`);
      await checkVietnamese(page, `${user} home`);
      await shot(page, `signin-${user}-home-desktop`);
      // Signing out ends the session.
      await page.click('.bar button.link');
      await page.waitForURL(`${BASE}/signin`);
      ok((await apiAs(page, 'GET', '/auth/me')).status === 401, `${user}: still signed in after sign-out`);
      await context.close();
    }
    // A wrong password says so, in the chosen language.
    const context = await browser.newContext({ locale: 'en-GB' });
    const page = await context.newPage();
    await page.goto(`${BASE}/signin`);
    ok((await page.textContent('main h1')).trim() === 'Sign in', 'English browsers get English');
    await page.fill('input[name=username]', 'bacsi');
    await page.fill('input[name=password]', 'wrong');
    await page.click('form button[type=submit]');
    await page.waitForSelector('.error:not(:empty)');
    ok((await page.textContent('.error')).includes('wrong'), 'no message for a wrong password');
    // The switch changes the language and is remembered.
    await page.selectOption('#lang', 'vi');
    await page.waitForFunction(() => document.querySelector('main h1').textContent.trim() === 'Đăng nhập');
    await page.reload();
    ok((await page.textContent('main h1')).trim() === 'Đăng nhập', 'the language choice is kept');
    await context.close();
  });

  let bookedId = null;
  await test('rural clinician books a teleconsultation through the UI (hold, then confirm)', async () => {
    const { context, page } = await person('tramyte');
    await shot(page, 'clinician-home-desktop');
    await page.click('a[href="/book"]');
    await page.waitForSelector('select[name=specialty] option[value=cardiology]', { state: 'attached' });
    await checkVietnamese(page, 'booking search');
    await page.selectOption('select[name=specialty]', 'cardiology');
    await page.click('form[role=search] button[type=submit]');
    await page.waitForSelector('button.slot');
    await checkVietnamese(page, 'booking results');
    const slotStart = await page.getAttribute('button.slot >> nth=3', 'data-slot');
    await page.click('button.slot >> nth=3');
    await page.selectOption('select[name=patient]', { index: 1 });
    await page.fill('textarea[name=reason]', 'Đau ngực khi gắng sức, nghi bệnh mạch vành');
    await page.selectOption('select[name=urgency]', 'soon');
    await checkVietnamese(page, 'booking form');
    await shot(page, 'clinician-booking-form-desktop');
    await page.click('form[aria-labelledby=book-h] button[type=submit]');
    await page.waitForSelector('[aria-labelledby=hold-h]');
    await checkVietnamese(page, 'booking hold');
    await shot(page, 'clinician-booking-held-desktop');
    await page.click('[aria-labelledby=hold-h] button.primary');
    await page.waitForURL(/\/consultations\/\d+$/);
    bookedId = Number(page.url().split('/').pop());
    await page.waitForSelector('.badge.st-booked');
    await checkVietnamese(page, 'consultation page');
    await shot(page, 'clinician-booked-desktop');
    const c = await apiAs(page, 'GET', `/consultations/${bookedId}`);
    ok(c.status === 200 && c.body.status === 'booked' && c.body.start_at.slice(0, 16) === slotStart.slice(0, 16) && c.body.urgency === 'soon',
      `the booking is not as entered: ${JSON.stringify(c.body)}`);
    await context.close();
  });

  await test('scheduler edits availability and exceptions, reads the calendar, reschedules and cancels with a reason, sees utilisation', async () => {
    const { context, page } = await person('dieuphoi');
    await page.waitForSelector('section.clinician');
    await checkVietnamese(page, 'calendar');
    await shot(page, 'scheduler-calendar-day-desktop');
    await page.selectOption('main form select >> nth=-1', 'week');
    await page.click('main form button[type=submit]');
    await page.waitForSelector('.caldays h3');
    await shot(page, 'scheduler-calendar-week-desktop');

    await page.click('.tabs a[href="/schedule/availability"]');
    await page.waitForSelector('#rules-h');
    await checkVietnamese(page, 'availability');
    const rulesBefore = await page.locator('tr[data-rule]').count();
    const ruleForm = page.locator('form[aria-label="Thêm buổi hằng tuần"]');
    await ruleForm.locator('select[name=weekday]').selectOption('7');
    await ruleForm.locator('input[name=start]').fill('18:00');
    await ruleForm.locator('input[name=end]').fill('20:00');
    await ruleForm.locator('input[name=slot]').fill('30');
    await ruleForm.locator('button[type=submit]').click();
    await page.waitForFunction((n) => document.querySelectorAll('tr[data-rule]').length === n + 1, rulesBefore);
    const excForm = page.locator('form[aria-label="Thêm nghỉ phép hoặc buổi tăng cường"]');
    const excBefore = await page.locator('li[data-exception]').count();
    await excForm.locator('input[name=note]').fill('Hội thảo');
    await excForm.locator('button[type=submit]').click();
    await page.waitForFunction((n) => document.querySelectorAll('li[data-exception]').length === n + 1, excBefore);
    await shot(page, 'scheduler-availability-desktop');
    await page.locator('li[data-exception] button').last().click();
    await page.waitForFunction((n) => document.querySelectorAll('li[data-exception]').length === n, excBefore);

    // Reschedule, then cancel, a booking from the calendar.
    await page.click('.tabs a[href="/schedule"]');
    await page.selectOption('main form select >> nth=-1', 'week');
    await page.click('main form button[type=submit]');
    await page.waitForSelector('.entry.st-booked a');
    await page.click('.entry.st-booked a >> nth=-1');
    await page.waitForSelector('#manage-h');
    await checkVietnamese(page, 'consultation (scheduler)');
    const id = Number(page.url().split('/').pop());
    const before = (await apiAs(page, 'GET', `/consultations/${id}`)).body;
    await page.fill('textarea[name=reason]', 'Bác sĩ đi công tác');
    await page.click('#manage-h ~ .row button:not(.danger)');
    await page.waitForSelector('input[name=newslot]');
    await page.check('input[name=newslot] >> nth=0');
    await page.click('#manage-h ~ button');
    await page.waitForFunction(() => [...document.querySelectorAll('.history li')].some((li) => li.textContent.includes('Đổi lịch')));
    const moved = (await apiAs(page, 'GET', `/consultations/${id}`)).body;
    ok(moved.start_at !== before.start_at && moved.status === 'booked', 'the consultation did not move');
    await page.fill('textarea[name=reason]', 'Người bệnh xin hủy');
    await page.click('#manage-h ~ .row button.danger');
    await page.waitForSelector('.badge.st-cancelled');
    const cancelled = (await apiAs(page, 'GET', `/consultations/${id}`)).body;
    ok(cancelled.status === 'cancelled' && cancelled.cancel_reason === 'Người bệnh xin hủy', 'not cancelled with the reason');
    await shot(page, 'scheduler-cancelled-desktop');

    await page.click('a[href="/schedule/utilisation"]');
    await page.waitForSelector('svg.bars rect.bar');
    await checkVietnamese(page, 'utilisation');
    const bars = await page.locator('svg.bars g[data-clinician]').count();
    ok(bars > 0, 'no bars in the utilisation chart');
    await shot(page, 'scheduler-utilisation-desktop');
    await context.close();
  });

  await test('patient on a phone: upcoming visits, the visit page, the device check with preview and microphone level', async () => {
    const { context, page } = await person('benhnhan', { viewport: PHONE });
    await checkVietnamese(page, 'patient home');
    await shot(page, 'patient-home-phone');
    const joinable = await page.locator('a[data-join]').count();
    await page.click('li.item a[href^="/consultations/"] >> nth=0');
    await page.waitForSelector('#note-h');
    await checkVietnamese(page, 'patient consultation');
    await shot(page, 'patient-visit-phone');
    ok(joinable >= 0, 'home listed');
    await page.goto(`${BASE}/call/${page.url().split('/').pop()}`);
    await page.waitForFunction(() => { const v = document.querySelector('video.preview'); return v && v.videoWidth > 0; });
    await page.waitForFunction(() => document.querySelector('select[name=camera]').options.length > 0);
    await checkVietnamese(page, 'device check');
    await shot(page, 'patient-device-check-phone');
    await context.close();
  });

  await test('a refused camera permission gets a clear message', async () => {
    const context = await browser.newContext({ locale: 'vi-VN', viewport: PHONE });
    const page = await context.newPage();
    await page.addInitScript(() => {
      navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('denied', 'NotAllowedError'));
    });
    await page.goto(`${BASE}/signin`);
    await page.fill('input[name=username]', 'benhnhan');
    await page.fill('input[name=password]', PASSWORD);
    await page.click('form button[type=submit]');
    await page.waitForURL(`${BASE}/`);
    const c = (await apiAs(page, 'GET', '/consultations')).body[0];
    await page.goto(`${BASE}/call/${c.id}`);
    await page.waitForSelector('.device .error:not(:empty)');
    ok((await page.textContent('.device .error')).includes('chưa được phép'), 'no message for a refused permission');
    await shot(page, 'patient-permission-refused-phone');
    await context.close();
  });

  // The call needs the signaling route, which lands separately on main.
  const signaling = await fetch(`${BASE}/signaling`).then((r) => r.status).catch(() => 0);
  if (signaling === 404) {
    pending('call: specialist admits the patient, video both ways, chat, signed note, reconnect after a dropped socket, patient reads the summary',
      'GET /signaling is 404 on this build (the signaling server is not merged yet)');
  } else {
    await test('call: specialist admits the patient, video both ways, chat, signed note, reconnect after a dropped socket, patient reads the summary', () => callJourney());
  }
}

async function framesFlowing(page, who) {
  const read = () => page.evaluate(async () => {
    const q = window.__call ? await window.__call.quality() : [];
    const v = [...document.querySelectorAll('.stage video')].map((x) => x.videoWidth);
    return { frames: q.reduce((a, b) => a + b.framesDecoded, 0), bytes: q.reduce((a, b) => a + b.bytes, 0), width: Math.max(0, ...v) };
  });
  for (let i = 0; i < 60; i++) {
    const a = await read();
    if (a.frames > 0 && a.width > 0) {
      await page.waitForTimeout(1000);
      const b = await read();
      if (b.bytes > a.bytes && b.frames > a.frames) return;
    }
    await page.waitForTimeout(500);
  }
  fail(`${who}: no video frames decoded`);
}

async function callJourney() {
  const doc = await person('bacsi');
  const pat = await person('benhnhan', { viewport: PHONE });
  // A consultation of these two whose join window is open now.
  const mine = (await apiAs(pat.page, 'GET', '/consultations')).body;
  const now = Date.now();
  const c = mine.find((x) => x.clinician_id && ['booked', 'in_progress'].includes(x.status)
    && new Date(x.start_at).getTime() - 15 * 60000 <= now && new Date(x.end_at).getTime() + 30 * 60000 >= now);
  ok(c, 'the demo has no consultation of bacsi and benhnhan open for joining now');
  await doc.page.goto(`${BASE}/call/${c.id}`);
  await doc.page.waitForFunction(() => { const v = document.querySelector('video.preview'); return v && v.videoWidth > 0; });
  await doc.page.click('.device button.primary');
  await doc.page.waitForSelector('.call:not([hidden])');
  await pat.page.goto(`${BASE}/call/${c.id}`);
  await pat.page.waitForFunction(() => { const v = document.querySelector('video.preview'); return v && v.videoWidth > 0; });
  await pat.page.click('.device button.primary');
  await pat.page.waitForSelector('.waiting-room:not([hidden])');
  await checkVietnamese(pat.page, 'waiting room');
  await shot(pat.page, 'patient-waiting-room-phone');
  await doc.page.waitForSelector('[data-admit]');
  await shot(doc.page, 'specialist-admit-desktop');
  await doc.page.click('[data-admit]');
  await pat.page.waitForSelector('.call:not([hidden])');
  await Promise.all([framesFlowing(doc.page, 'specialist'), framesFlowing(pat.page, 'patient')]);
  await checkVietnamese(doc.page, 'call (specialist)');
  await checkVietnamese(pat.page, 'call (patient)');

  await pat.page.fill('input[name=chat]', 'Chào bác sĩ, tôi nghe rõ');
  await pat.page.click('.chat button[type=submit]');
  await doc.page.waitForFunction(() => [...document.querySelectorAll('.chat-log .text')].some((x) => x.textContent === 'Chào bác sĩ, tôi nghe rõ'));

  await doc.page.fill('textarea[name=subjective]', 'Khó thở về đêm 2 tuần');
  await doc.page.fill('textarea[name=objective]', 'Nhịp thở 20 lần/phút');
  await doc.page.fill('textarea[name=assessment]', 'Theo dõi hen phế quản');
  await doc.page.fill('textarea[name=plan]', 'Đo chức năng hô hấp tại trạm, tái khám sau 2 tuần');
  await doc.page.click('.notes button.primary');
  await doc.page.waitForFunction(() => document.querySelector('textarea[name=plan]').readOnly);
  await shot(doc.page, 'specialist-call-note-signed-desktop');
  await shot(pat.page, 'patient-call-phone');

  // The patient's socket drops: "reconnecting", then back by itself, with frames again.
  await pat.page.evaluate(() => window.__call.ws.close());
  await pat.page.waitForSelector('.banner[data-state=reconnecting]:not([hidden])');
  await shot(pat.page, 'patient-reconnecting-phone');
  await pat.page.waitForSelector('.banner[data-state=connected]', { state: 'attached', timeout: 30000 });
  await framesFlowing(pat.page, 'patient after reconnect');
  await framesFlowing(doc.page, 'specialist after reconnect');

  await pat.page.click('.controls button.danger');
  await pat.page.waitForURL(new RegExp(`/consultations/${c.id}$`));
  await pat.page.waitForSelector('dd[data-section=plan]');
  ok((await pat.page.textContent('dd[data-section=plan]')).includes('tái khám sau 2 tuần'), 'the patient does not see the signed advice');
  await checkVietnamese(pat.page, 'visit summary');
  await shot(pat.page, 'patient-visit-summary-phone');
  await doc.context.close();
  await pat.context.close();
}

try {
  await main();
} catch (e) {
  results.push({ name: 'setup', status: 'failed' });
  console.log(`FAILED  setup: ${e && e.stack || e}`);
} finally {
  if (browser) await browser.close();
  server.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
}
const failed = results.filter((r) => r.status === 'failed').length;
const passed = results.filter((r) => r.status === 'passed').length;
const pend = results.filter((r) => r.status === 'pending').length;
console.log(`\n${passed} passed, ${failed} failed, ${pend} pending; screenshots in ${ART}`);
process.exit(failed ? 1 : 0);
