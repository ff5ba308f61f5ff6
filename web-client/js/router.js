// A small history router: paths like /book or /call/12, links marked data-nav, back and forward.

const routes = [];
let current = null;

/** route('/call/:id', view): a view is async (main, params) => cleanup function or nothing. */
export function route(pattern, view) {
  const names = [];
  const re = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, n) => { names.push(n); return '([^/]+)'; })}$`);
  routes.push({ re, names, view });
}

export function navigate(path, replace = false) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

export async function render() {
  if (current && typeof current.cleanup === 'function') current.cleanup();
  current = null;
  const path = location.pathname;
  const main = document.getElementById('main');
  for (const r of routes) {
    const m = r.re.exec(path);
    if (!m) continue;
    const params = Object.fromEntries(r.names.map((n, i) => [n, decodeURIComponent(m[i + 1])]));
    const mine = { cleanup: null };
    current = mine;
    main.replaceChildren();
    const cleanup = await r.view(main, params);
    if (current === mine) mine.cleanup = cleanup;
    else if (typeof cleanup === 'function') cleanup();
    // A screen that is a form starts in its first field (`data-autofocus`); any other moves
    // focus to its heading, as a page load would, for screen readers.
    const first = main.querySelector('[data-autofocus]');
    const heading = main.querySelector('h1');
    if (current !== mine) return;
    if (first) first.focus();
    else if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
    return;
  }
  navigate('/', true);
}

document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[data-nav]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', render);
