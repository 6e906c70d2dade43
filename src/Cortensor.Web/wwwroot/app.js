// The dashboard's only script. Clipboard access for "copy key" (Blazor has no API for it), and column titles
// on table cells: FluentDataGrid has no card layout for narrow screens, so each cell gets its column's title
// (data-label) and app.css shows a row as a labelled card at phone width. Rows come and go with Blazor's
// renders, hence the observer; it watches added nodes only, so setting the labels does not wake it again.
window.cortensor = {
    copy: async text => { await navigator.clipboard.writeText(text); }
};

(() => {
    const label = () => {
        for (const grid of document.querySelectorAll('.portal-grid')) {
            const titles = [...grid.querySelectorAll('thead th')].map(th =>
                (th.querySelector('[col-title-text]')?.textContent ?? th.textContent ?? '').trim());
            for (const row of grid.querySelectorAll('tbody tr')) {
                for (const td of row.children) {
                    const title = titles[td.cellIndex];
                    if (title !== undefined && td.dataset.label !== title) td.dataset.label = title;
                }
            }
        }
    };
    let queued = false;
    new MutationObserver(() => {
        if (queued) return;
        queued = true;
        requestAnimationFrame(() => { queued = false; label(); });
    }).observe(document.documentElement, { childList: true, subtree: true });
    label();
})();
