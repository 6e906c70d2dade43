"""Turns bench/run.sh's peer matrix (wrk outputs plus the Api's CPU and allocation per cell) into the
issue's table: every target at every concurrency, added latency over each gateway's own upstream,
and the ratios against Portkey and against the bare YARP floor."""
import json, re, sys

out, conns = sys.argv[1], sys.argv[2].split()
UNITS = {'us': 1e-3, 'ms': 1.0, 's': 1000.0}

def wrk(name, c):
    text = open(f'{out}/peer-{name}-{c}.txt').read()
    def pct(p):
        m = re.search(rf'^\s+{p}%\s+([0-9.]+)(us|ms|s)\s*$', text, re.M)
        return float(m.group(1)) * UNITS[m.group(2)] if m else float('nan')
    rps = re.search(r'Requests/sec:\s+([0-9.]+)', text)
    reqs = re.search(r'(\d+) requests in', text)
    non200 = re.search(r'non-200 responses: (\d+)', text)
    return dict(rps=float(rps.group(1)) if rps else 0.0, p50=pct(50), p99=pct(99),
                requests=int(reqs.group(1)) if reqs else 0, non200=int(non200.group(1)) if non200 else -1)

def res(c):
    try: return json.load(open(f'{out}/peer-api-{c}.json'))
    except Exception: return {}

def ms(v): return f'{v:.2f} ms'
def plus(v): return f'{v:+.2f} ms'
def ratio(a, b): return f'{a / b:.2f}×' if b > 0 else 'n/a'

print('| connections | Portal req/s (p50 / p99) | Portal added p50 / p99 | Api own time p50 / p99 | Api CPU µs/req | Api alloc/req | admitted from leases '
      '| YARP req/s (p50 / p99) | YARP added p50 / p99 | Portkey req/s (p50 / p99) | Portkey added p50 / p99 '
      '| Portal ÷ Portkey req/s | Portal added p50 ÷ YARP added p50 | Portal ÷ direct req/s |')
print('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
summary = []
for c in conns:
    d, a, y, u, p = (wrk(n, c) for n in ('direct', 'api', 'yarp', 'upstream', 'portkey'))
    r = res(c)
    cpu = f"{r['cpu_us']:.0f}" if 'cpu_us' in r else 'n/a'
    alloc = f"{r['alloc_bytes'] / 1024:.1f} KB" if r.get('alloc_bytes') else 'n/a'
    leased = f"{100 * min(1.0, r['leased']):.0f} %" if 'leased' in r else 'n/a'
    own = f"{r['own_p50_ms']:.3f} / {r['own_p99_ms']:.3f} ms" if 'own_p99_ms' in r else 'n/a'
    a_add = (a['p50'] - d['p50'], a['p99'] - d['p99'])
    y_add = (y['p50'] - d['p50'], y['p99'] - d['p99'])
    p_add = (p['p50'] - u['p50'], p['p99'] - u['p99'])
    floor = f'{a_add[0] / y_add[0]:.1f}×' if y_add[0] > 0.005 else 'n/a (YARP adds ~0)'
    print(f"| {c} | {a['rps']:,.0f} ({ms(a['p50'])} / {ms(a['p99'])}) | {plus(a_add[0])} / {plus(a_add[1])} | {own} | {cpu} | {alloc} | {leased} "
          f"| {y['rps']:,.0f} ({ms(y['p50'])} / {ms(y['p99'])}) | {plus(y_add[0])} / {plus(y_add[1])} "
          f"| {p['rps']:,.0f} ({ms(p['p50'])} / {ms(p['p99'])}) | {plus(p_add[0])} / {plus(p_add[1])} "
          f"| **{ratio(a['rps'], p['rps'])}** | {floor} | {100 * a['rps'] / d['rps']:.1f} % |")
    summary.append((c, d, a, y, u, p, a_add, y_add, p_add))
print()
print('Direct (no gateway): ' + '; '.join(
    f"{c} conn: RouterSim {d['rps']:,.0f} req/s ({ms(d['p50'])} / {ms(d['p99'])}), trivial upstream {u['rps']:,.0f} req/s ({ms(u['p50'])} / {ms(u['p99'])})"
    for c, d, a, y, u, p, *_ in summary) + '.')
bad = [f"{n} at {c} conn: {x['non200']}" for c, d, a, y, u, p, *_ in summary for n, x in
       (('direct', d), ('Portal', a), ('YARP', y), ('upstream', u), ('Portkey', p)) if x['non200'] != 0]
print()
print('Non-200 answers: ' + (', '.join(bad) if bad else 'none') + '.')
json.dump([dict(c=c, portal=a, portkey=p, yarp=y, direct=d, upstream=u, portal_added=a_add, yarp_added=y_add, portkey_added=p_add)
           for c, d, a, y, u, p, a_add, y_add, p_add in summary], open(f'{out}/peers.json', 'w'))
