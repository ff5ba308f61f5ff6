// The encounter note on screen: the editor (SOAP, ICD-10 diagnoses, advice for the referring
// clinician, follow-up; versioned saves, a conflict shows the version saved meanwhile; signing by
// the consulted specialist), the signed note with its addenda for clinicians (the referring
// clinician sees the advice first), the patient's plain-language summary, and the printable
// summary link. Used beside the video and on the consultation page.

import { h, mount, field, select, toast } from '../dom.js';
import { t, fmtDateTime } from '../i18n.js';
import * as s from '../session.js';
import {
  SOAP, FOLLOW_UPS, ICD10, getNote, saveDraft, signNote, addAddendum, summaryUrl, isSigned, isClinicianView,
  signedEntry, addenda, currentContent, conflictVersion,
} from '../notes.js';
import { errorText, loading, errorBox } from './common.js';

const OPEN = ['booked', 'in_progress', 'completed'];
const myClinicianId = () => s.session.me && s.session.me.clinician_id;

/** Field names the API reports (`plan`, `diagnoses[0].code`) in the reader's words. */
function fieldName(f) {
  const m = /^diagnoses\[(\d+)\]\.(code|text)$/.exec(f);
  if (m) return t(m[2] === 'code' ? 'note.dx_code_n' : 'note.dx_text_n', { n: Number(m[1]) + 1 });
  return [...SOAP, 'advice', 'follow_up', 'follow_up_note', 'diagnoses'].includes(f) ? t(`note.${f}`) : f;
}

function noteError(x) {
  if (x && x.status === 422 && x.details && Array.isArray(x.details.fields)) {
    return t('note.missing', { fields: x.details.fields.map((f) => fieldName(f.field)).join(', ') });
  }
  if (x && x.code === 'note_signed') return t('note.already_signed');
  // The browser's own refusals: the clinician cancelled, or the passkey prompt timed out.
  if (x && (x.name === 'NotAllowedError' || x.name === 'AbortError')) return t('passkey.cancelled');
  if (x && x.code === 'passkey_rejected') return t('passkey.rejected');
  if (x && x.code === 'consultation_not_open') return t('note.not_open');
  return errorText(x);
}

const printLink = (id) => h('a', { href: summaryUrl(id), target: '_blank', rel: 'noopener', class: 'button', 'data-summary': id }, t('note.print'));

/** The note's panel for a clinician of `c`: the editor while a draft, the signed note after. */
export function notePanel(c, zone, { compact = false } = {}) {
  const box = h('section', { class: `card notes${compact ? ' compact' : ''}`, 'aria-labelledby': 'notes-h' }, h('h2', { id: 'notes-h' }, t('note.title')), loading());
  const heading = box.firstChild;
  (async () => {
    try {
      const note = await getNote(c.id);
      if (isSigned(note)) mount(box, heading, signedView(c, note, zone));
      else if (OPEN.includes(c.status)) {
        mount(box, heading, editor(c, note, zone, (signed) => {
          mount(box, heading, signedView(c, signed, zone));
          // The sign button is gone: keyboard and screen-reader users land on what happened.
          box.querySelector('.signed-note [role=status]').focus();
        }));
      }
      else mount(box, heading, h('p', { class: 'empty' }, t('note.none')));
    } catch (x) { mount(box, heading, errorBox(x)); }
  })();
  return box;
}

/** The patient's summary: signed content only, in plain words from the API. */
export function patientNote(c, zone) {
  const box = h('section', { class: 'card', 'aria-labelledby': 'note-h' }, h('h2', { id: 'note-h' }, t('note.summary')), loading());
  const heading = box.firstChild;
  (async () => {
    try {
      const note = await getNote(c.id);
      if (!isClinicianView(note) && note.status === 'verification_failed') {
        // The stored note is not what the doctor signed: the server sends none of its text.
        mount(box, heading, h('p', { class: 'error', role: 'alert', 'data-verification': 'failed' }, t('note.unverified')));
        return;
      }
      if (isClinicianView(note) || note.status !== 'signed') { mount(box, heading, h('p', { class: 'empty' }, t('note.none'))); return; }
      mount(box, heading,
        h('p', { class: 'hint' }, t('note.by', { name: note.signed_by, when: fmtDateTime(note.signed_at, zone) })),
        h('dl', { class: 'note plain' }, note.sections.flatMap((sec) => [h('dt', {}, sec.label), h('dd', { 'data-section': sec.key }, sec.text)])),
        note.addenda.length ? h('section', { 'aria-labelledby': 'add-h' }, h('h3', { id: 'add-h' }, t('note.addenda')),
          h('ol', { class: 'addenda' }, note.addenda.map((a) => h('li', { 'data-addendum': true }, h('p', {}, a.text),
            h('small', {}, t('note.by', { name: a.signed_by, when: fmtDateTime(a.signed_at, zone) })))))) : null,
        h('p', {}, printLink(c.id)));
    } catch (x) { mount(box, heading, x.status === 404 ? h('p', { class: 'empty' }, t('note.none')) : errorBox(x)); }
  })();
  return box;
}

/** A signed content, for clinicians; the referring clinician reads the advice first. */
function contentList(content, { skipAdvice = false } = {}) {
  const rows = [];
  const add = (key, value) => { if (value) rows.push(h('dt', {}, t(`note.${key}`)), h('dd', { 'data-section': key }, value)); };
  for (const k of SOAP.slice(0, 3)) add(k, content[k]);
  add('diagnoses', (content.diagnoses || []).length
    ? h('ul', { class: 'dx' }, content.diagnoses.map((d) => h('li', {}, h('code', {}, d.code), ' ', d.text))) : null);
  add('plan', content.plan);
  if (!skipAdvice) add('advice', content.advice);
  add('follow_up', content.follow_up ? [t(`note.fu.${content.follow_up}`), content.follow_up_note ? `\n${content.follow_up_note}` : ''].join('') : null);
  return h('dl', { class: 'note' }, rows);
}

function signedView(c, note, zone) {
  const entry = signedEntry(note);
  const failed = !!entry && entry.verification === 'failed';
  const content = entry && !failed ? entry.content : {};
  const referring = c.referring_clinician_id && c.referring_clinician_id === myClinicianId();
  const list = h('ol', { class: 'addenda' }, addenda(note).map((a) => addendumItem(a, zone)));
  const addendaBox = h('section', { 'aria-labelledby': 'add-h' }, h('h3', { id: 'add-h' }, t('note.addenda')), list);
  if (!addenda(note).length) addendaBox.hidden = true;
  const text = h('textarea', { name: 'addendum', rows: 2, maxlength: 8000, required: true });
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', {
    class: 'addendum-form',
    'aria-label': t('note.add_addendum'),
    onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = '';
      if (!text.value.trim()) { text.focus(); return; }
      try {
        const added = await addAddendum(c.id, text.value);
        list.append(addendumItem(added, zone));
        addendaBox.hidden = false;
        text.value = '';
        toast(t('note.addendum_added'));
      } catch (x) { err.textContent = noteError(x); }
    },
  }, field(t('note.addendum_text'), text, t('note.addendum_hint')), err, h('button', { type: 'submit' }, t('note.add_addendum')));
  return h('div', { class: 'signed-note', 'data-status': 'signed' },
    h('p', { class: 'hint', role: 'status', tabindex: -1 }, t('note.signed_by', { name: entry ? entry.signer_name : '', when: entry ? fmtDateTime(entry.signed_at, zone) : '' })),
    referring && content.advice ? h('section', { class: 'advice', 'aria-labelledby': 'advice-h' }, h('h3', { id: 'advice-h' }, t('note.advice_for_you')), h('p', { 'data-advice': true }, content.advice)) : null,
    failed ? h('p', { class: 'error', role: 'alert', 'data-verification': 'failed' }, t('note.unverified'))
      : contentList(content, { skipAdvice: !!(referring && content.advice) }),
    entry && entry.signed_with === 'passkey' ? h('p', { class: 'hint', 'data-signed-with': 'passkey' }, t('passkey.signed_with')) : null,
    entry ? h('p', { class: 'hash' }, h('small', {}, `${t('note.hash')}: `, h('code', {}, entry.content_hash))) : null,
    addendaBox, form, h('p', {}, printLink(c.id)));
}

function addendumItem(a, zone) {
  const failed = a.verification === 'failed';
  return h('li', { 'data-addendum': a.seq, 'data-verification': a.verification || null },
    failed ? h('p', { class: 'error' }, t('note.unverified')) : h('p', {}, (a.content && a.content.text) || ''),
    h('small', {}, t('note.by', { name: a.signer_name, when: fmtDateTime(a.signed_at, zone) })));
}

/** How long after the last keystroke a draft saves itself. */
const AUTOSAVE_MS = 15 * 1000;

/** The draft editor. `onSigned(note)` replaces it by the signed view. */
function editor(c, initial, zone, onSigned) {
  let version = initial ? initial.version : 0;
  const canSign = c.clinician_id === myClinicianId();
  const area = (name, rows, max, extra = {}) => h('textarea', { name, rows, maxlength: max, ...extra });
  const inputs = {
    subjective: area('subjective', 3, 8000),
    objective: area('objective', 3, 8000),
    assessment: area('assessment', 3, 8000),
    plan: area('plan', 3, 8000),
    advice: area('advice', 3, 8000),
    follow_up_note: area('follow_up_note', 2, 1000),
  };
  const followUp = select({ name: 'follow_up' }, [['', t('note.choose_follow_up')], ...FOLLOW_UPS.map((f) => [f, t(`note.fu.${f}`)])]);
  const dxList = h('ol', { class: 'dx-list' });
  const dxRows = [];
  const renumber = () => dxRows.forEach((r, i) => {
    r.code.setAttribute('aria-label', t('note.dx_code_n', { n: i + 1 }));
    r.text.setAttribute('aria-label', t('note.dx_text_n', { n: i + 1 }));
    r.remove.setAttribute('aria-label', t('note.dx_remove_n', { n: i + 1 }));
  });
  function addDx(d = { code: '', text: '' }, focus = false) {
    if (dxRows.length >= 20) return;
    const code = h('input', { name: 'dx_code', value: d.code, maxlength: 8, autocomplete: 'off', spellcheck: 'false', class: 'dx-code', 'aria-describedby': 'dx-hint' });
    const text = h('input', { name: 'dx_text', value: d.text, maxlength: 500, autocomplete: 'off', class: 'dx-text' });
    const row = { code, text };
    row.remove = h('button', { type: 'button', class: 'link', onclick: () => { dxRows.splice(dxRows.indexOf(row), 1); row.li.remove(); renumber(); } }, t('note.dx_remove'));
    row.li = h('li', { class: 'dx-row' }, code, text, row.remove);
    dxRows.push(row);
    dxList.append(row.li);
    renumber();
    if (focus) code.focus();
  }
  const fill = (content) => {
    for (const [k, el] of Object.entries(inputs)) el.value = content[k] || '';
    followUp.value = content.follow_up || '';
    dxRows.splice(0).forEach((r) => r.li.remove());
    for (const d of content.diagnoses || []) addDx(d);
  };
  const collect = () => {
    const content = { diagnoses: [] };
    for (const [k, el] of Object.entries(inputs)) if (el.value.trim()) content[k] = el.value;
    if (followUp.value) content.follow_up = followUp.value;
    for (const r of dxRows) if (r.code.value.trim() || r.text.value.trim()) content.diagnoses.push({ code: r.code.value.trim(), text: r.text.value.trim() });
    return content;
  };
  const badCodes = () => {
    let bad = null;
    dxRows.forEach((r, i) => {
      const wrong = !!(r.code.value.trim() || r.text.value.trim()) && !ICD10.test(r.code.value.trim());
      r.code.setAttribute('aria-invalid', String(wrong));
      if (wrong && !bad) bad = { n: i + 1, code: r.code.value.trim(), el: r.code };
    });
    return bad;
  };

  const status = h('p', { class: 'hint', role: 'status', 'data-version': version });
  const err = h('p', { class: 'error', role: 'alert' });
  const conflictBox = h('section', { class: 'conflict', hidden: true, 'aria-labelledby': 'conflict-h' });
  const saveBtn = h('button', { type: 'submit' }, t('note.save'));
  const signBtn = canSign ? h('button', { type: 'button', class: 'primary', onclick: () => sign() }, t('note.sign')) : null;
  const showStatus = (saved) => {
    status.dataset.version = String(version);
    status.textContent = version ? t(saved ? 'note.draft_saved' : 'note.draft_version', { n: version }) : t('note.not_saved');
  };

  async function showConflict(current) {
    let theirs = null;
    try { theirs = await getNote(c.id); } catch { /* the message below still says what happened */ }
    if (theirs && isSigned(theirs)) { onSigned(theirs); return; }
    const content = currentContent(theirs);
    mount(conflictBox,
      h('h3', { id: 'conflict-h' }, t('note.conflict_title', { n: current })),
      h('p', {}, t('note.conflict')),
      contentList(content),
      h('div', { class: 'row' },
        h('button', { type: 'button', 'data-conflict': 'theirs', onclick: () => { fill(content); version = current; conflictBox.hidden = true; err.textContent = ''; showStatus(false); } }, t('note.load_theirs')),
        h('button', { type: 'button', 'data-conflict': 'mine', onclick: () => { version = current; conflictBox.hidden = true; err.textContent = ''; showStatus(false); } }, t('note.keep_mine', { n: current }))));
    conflictBox.hidden = false;
  }

  // Drafts keep themselves: what is typed is kept for this tab at once (a reload brings it
  // back), and saved as a new draft version after a pause in typing.
  const backupKey = `telehealth.draft.${c.id}`;
  let dirty = false;
  let autosaveTimer = null;
  const keep = () => {
    dirty = true;
    try { sessionStorage.setItem(backupKey, JSON.stringify({ base: version, content: collect() })); } catch { /* storage full or off: the autosave still runs */ }
    clearTimeout(autosaveTimer);
    autosaveTimer = setTimeout(() => { if (dirty && document.contains(saveBtn) && !saveBtn.disabled && !badCodes()) save({ auto: true }); }, AUTOSAVE_MS);
  };

  async function save({ auto = false } = {}) {
    err.textContent = '';
    const bad = badCodes();
    if (bad) { err.textContent = t('note.dx_bad_code', { n: bad.n, code: bad.code }); bad.el.focus(); return false; }
    saveBtn.disabled = true;
    clearTimeout(autosaveTimer);
    dirty = false;
    try {
      const note = await saveDraft(c.id, version, collect());
      version = note.version;
      conflictBox.hidden = true;
      showStatus(true);
      if (auto) status.textContent = t('note.autosaved', { n: version });
      if (!dirty) sessionStorage.removeItem(backupKey);
      return true;
    } catch (x) {
      dirty = true;
      const current = conflictVersion(x);
      if (current !== null) { err.textContent = t('note.conflict_short', { n: current }); await showConflict(current); } else err.textContent = noteError(x);
      return false;
    } finally { saveBtn.disabled = false; }
  }
  async function sign() {
    // Signing cannot be undone (only added to): ask once.
    if (!confirm(t('note.sign_confirm'))) return;
    if (!(await save())) return;
    signBtn.disabled = true;
    try {
      const note = await signNote(c.id, version);
      toast(t('note.signed'));
      onSigned(note);
    } catch (x) {
      err.textContent = noteError(x);
      signBtn.disabled = false;
    }
  }

  fill(currentContent(initial));
  showStatus(false);
  // Text typed on this tab but not saved before a reload comes back (when nobody has saved the
  // note since it was typed: otherwise the newer version wins, as in any conflict).
  try {
    const kept = JSON.parse(sessionStorage.getItem(backupKey) || 'null');
    if (kept && kept.base === version && JSON.stringify(kept.content) !== JSON.stringify(collect())) {
      fill(kept.content);
      dirty = true;
      status.textContent = t('note.restored');
    } else if (kept) sessionStorage.removeItem(backupKey);
  } catch { sessionStorage.removeItem(backupKey); }
  return h('form', { class: 'note-editor', 'data-status': initial ? initial.status : 'none', oninput: keep, onchange: keep, onsubmit: (e) => { e.preventDefault(); save(); } },
    field(t('note.subjective'), inputs.subjective),
    field(t('note.objective'), inputs.objective),
    field(t('note.assessment'), inputs.assessment),
    h('fieldset', { class: 'dx' }, h('legend', {}, t('note.diagnoses')),
      h('small', { id: 'dx-hint', class: 'hint' }, t('note.dx_code_hint')), dxList,
      h('button', { type: 'button', 'data-add-dx': true, onclick: () => addDx(undefined, true) }, t('note.dx_add'))),
    field(t('note.plan'), inputs.plan),
    field(t('note.advice'), inputs.advice, t('note.advice_hint')),
    field(t('note.follow_up'), followUp),
    field(t('note.follow_up_note'), inputs.follow_up_note),
    status, err, conflictBox,
    canSign ? null : h('p', { class: 'hint' }, t('note.only_specialist_signs')),
    h('div', { class: 'row' }, saveBtn, signBtn));
}
