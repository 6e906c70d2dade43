// The only script of the dashboard: clipboard access for "copy key" (Blazor has no API for it).
window.cortensor = {
    copy: async text => { await navigator.clipboard.writeText(text); }
};
