"""``benchmarks/RESULTS.md`` and ``benchmarks/speed.png`` from the JSON results of ``cnlrn bench``.

Each device's run is kept in its own ``results_<device>.json``, so a GPU run
adds its section beside the CPU's instead of replacing it.
"""

import glob
import itertools
import json
import statistics
from os import path as osp

from cnlrn_arch.reports.pictures import markdown_table, pyplot, save_figure
from cnlrn_tools.hardware.flops import floor_of, floor_ratio, size_label

GB = 1e9
# written by cnlrn bench --onnxruntime (onnx_compare.py), beside the results_<device>.json of the other cases
ONNXRUNTIME_RESULTS = 'onnxruntime.json'
# the times of PyTorch with NCHW weights, as the CPU ran it before channels-last became its default, in that file
NCHW = 'torch_nchw'


def below_floor(run):
    """Names of the measured cases faster than their floor: each one is a bug in the floor, not a fast case."""
    return [
        f'{row["kind"]} {row["impl"]} {row["precision"]} {size_label(row["size"])}'
        for row in run['cases']
        if 'error' not in row and floor_ratio(row, run) < 1
    ]


def case_table(columns, rows, cells, not_run_cells):
    """A Markdown table of cases: ``cells(row)`` per measured row, ``not_run_cells(row)`` where a case was not run."""
    return markdown_table(columns, [not_run_cells(row) if 'error' in row else cells(row) for row in rows])


def inference_table(run):
    rows = [r for r in run['cases'] if r['kind'] == 'inference']

    def cells(row):
        naive = next(
            (
                r
                for r in rows
                if r['impl'] == 'naive'
                and r['size'] == row['size']
                and r['precision'] == row['precision']
                and 'error' not in r
            ),
            None,
        )
        vs_time = f'{row["median_s"] / naive["median_s"]:.2f}' if naive else ''
        vs_mem = f'{row["activation_bytes"] / max(1, naive["activation_bytes"]):.2f}' if naive else ''
        return [
            size_label(row['size']),
            'x'.join(map(str, row['output_shape'][-2:])),
            row['impl'],
            row['precision'],
            str(len(row['times_s'])),
            f'{row["median_s"]:.2f}',
            f'{row["activation_bytes"] / GB:.3f}',
            f'{row["flops"] / row["median_s"] / 1e9:.0f}',
            f'{floor_ratio(row, run):.2f}',
            vs_time,
            vs_mem,
        ]

    def not_run_cells(row):
        return [size_label(row['size']), '', row['impl'], row['precision'], '0', f'not run: {row["error"]}'] + [''] * 5

    columns = [
        'LR input',
        'output',
        'attention',
        'precision',
        'runs',
        'median time (s)',
        'activations (GB)',
        'GFLOP/s',
        'x floor',
        'time vs naive',
        'memory vs naive',
    ]
    return case_table(columns, rows, cells, not_run_cells)


def training_table(run):
    def cells(row):
        return [
            row['impl'],
            row['precision'],
            f'{row["batch"]} x {size_label(row["size"])}',
            f'{row["median_s"]:.2f}',
            f'{1 / row["median_s"]:.2f}',
            f'{floor_ratio(row, run):.2f}',
            f'{row["activation_bytes"] / GB:.3f}',
        ]

    def not_run_cells(row):
        return [row['impl'], row['precision'], '', f'not run: {row["error"]}', '', '', '']

    columns = [
        'attention',
        'precision',
        'batch x LR patch',
        'median step (s)',
        'iterations/s',
        'x floor',
        'peak memory above weights and Adam (GB)',
    ]
    return case_table(columns, [r for r in run['cases'] if r['kind'] == 'training'], cells, not_run_cells)


def peak_section(run):
    """The GEMM peak table: every library, shape and precision measured, and which set each precision's peak."""
    rows = [
        [
            row['library'],
            f'{row["shape"]} ({"x".join(map(str, row["mnk"]))})',
            row['precision'],
            f'{row["gflops"]:.0f}',
        ]
        for row in run['gemm_peaks']
    ]
    set_by = '; '.join(
        f'{p}: {row["gflops"]:.0f} GFLOP/s, set by {row["library"]} ({row["shape"]}, {row["precision"]})'
        for p, row in run['peak_set_by'].items()
    )
    return [
        "### GEMM peaks: every library here, the network's shapes (M x K x N)",
        '',
        f'The floor of a case is its FLOPs at the best rate of its own precision or of float32: {set_by}.',
        '',
        *markdown_table(['library', 'GEMM', 'precision', 'GFLOP/s'], rows),
    ]


def cross_check_section(run):
    """This module's FLOP count beside FlopCounterMode's, per LR size."""
    checks = run['flop_cross_check']
    names = list(next(iter(checks.values())))
    rows = [[name] + [f'{checks[label][name]:.3f}' for label in checks] for name in names]
    return [
        '### FLOP count cross-check (TFLOPs of one forward)',
        '',
        'FlopCounterMode runs the explicit score-matrix attention on the meta device, whose products it counts as '
        '`bmm`; this count adds attention by formula (4 N^2 d per head). Neither counts softmax, activations or '
        'sums; both count a padded convolution over every output pixel (zeros included: the kernels compute '
        "them). The small `mm` is the attention's 1x1 embeddings, counted here under conv + linear.",
        '',
        *markdown_table(['count', *checks], rows),
    ]


def device_section(run):
    cpu = '' if run['device_short'] == 'cuda' else f', CPU capability {run["cpu_capability"]}'
    flags = f', CPU flags: {run["cpu_flags"]}' if run.get('cpu_flags') else ''
    lines = [
        f'## {run["device"]}',
        '',
        f'Command: `{run["command"]}`',
        '',
        f'torch {run["torch"]}, {run["threads"]} threads, up to {run["runs"]} runs per case (median; the first '
        'run is included and doubles as warm-up). '
        f'bf16 in hardware: {"yes" if run["bf16_native"] else "no, so no bf16 speed cases"}{cpu}{flags}.',
        '',
    ]
    faster = below_floor(run)
    if faster:
        lines += [
            f'**WARNING: {len(faster)} case(s) measured faster than their FLOP floor, so the floor is wrong '
            f'(a FLOP count too high or a peak too low): {", ".join(faster)}.**',
            '',
        ]
    lines += [
        *peak_section(run),
        '',
        '| LR input | conv + linear TFLOPs | attention TFLOPs | total TFLOPs |',
        '|---|---|---|---|',
    ]
    for label, flops in run['flops'].items():
        lines.append(
            f'| {label} | {flops["conv"] / 1e12:.2f} | {flops["attention"] / 1e12:.2f} | {flops["total"] / 1e12:.2f} |'
        )
    lines += ['', *cross_check_section(run), '']
    config = f'CNLRN{run["config"]}' if run['config'] else 'the released CNLRN configuration'
    lines += [f'### Inference (one forward, batch 1, {config})', ''] + inference_table(run)
    profiled = next((r for r in run['cases'] if r.get('profile')), None)
    if profiled:
        lines += [
            '',
            f'### Where the time goes: inference at {size_label(profiled["size"])}, torch.profiler, '
            f'top operators by own {"GPU" if run["device_short"] == "cuda" else "CPU"} time',
            '',
            '```',
            profiled['profile'].strip(),
            '```',
        ]
    lines += ['', '### Training (one step: forward, L1, backward, Adam)', ''] + training_table(run)
    quality = run.get('bf16_quality')
    if quality:
        fp32, bf16 = quality['fp32'], quality['bf16']
        lines += [
            '',
            f'### bf16 autocast quality (demo checkpoint, {quality["images"]} demo validation images)',
            '',
            '| precision | PSNR (dB) | SSIM |',
            '|---|---|---|',
            f'| fp32 | {fp32[0]:.3f} | {fp32[1]:.4f} |',
            f'| bf16 | {bf16[0]:.3f} | {bf16[1]:.4f} |',
            f'| change | {bf16[0] - fp32[0]:+.3f} | {bf16[1] - fp32[1]:+.4f} |',
        ]
    return lines


def onnxruntime_section(comparison):
    """PyTorch and onnxruntime at each size against the floor, and their operator profiles, from ``--onnxruntime``."""
    config = f'CNLRN{comparison["config"]}' if comparison['config'] else 'the released CNLRN configuration'
    peak = comparison['peak']
    runtimes = {
        NCHW: f'PyTorch {comparison["torch"]}, NCHW weights (before)',
        'torch': f'PyTorch {comparison["torch"]}, channels-last (default)',
        'onnxruntime': f'onnxruntime {comparison["onnxruntime"]}',
    }
    rows, ratio_lines = [], []
    for label, measured in comparison['sizes'].items():
        times, medians = measured['times_s'], measured['median_s']
        for runtime, name in runtimes.items():
            rows.append(
                [
                    label,
                    name,
                    str(len(times[runtime])),
                    f'{medians[runtime]:.2f}',
                    f'{min(times[runtime]):.2f}',
                    f'{measured["floor_s"]:.2f}',
                    f'{medians[runtime] / measured["floor_s"]:.2f}',
                    f'{medians[runtime] / medians["onnxruntime"]:.2f}',
                ]
            )
        ratios = measured['turn_ratios']
        ratio_lines.append(
            f'- {label}: {", ".join(f"{r:.2f}" for r in ratios)} (median {statistics.median(ratios):.2f}); '
            f'largest difference between the outputs {measured["max_abs_difference"]:.1e}; between PyTorch before and '
            f'now {measured["max_abs_difference_to_before"]:.1e}'
        )
    columns = [
        'LR input',
        'runtime',
        'runs',
        'median (s)',
        'fastest (s)',
        'floor (s)',
        'x floor',
        'median vs onnxruntime',
    ]
    lines = [
        f'## onnxruntime against PyTorch, against the floor: {comparison["device"]}',
        '',
        f'Command: `{comparison["command"]}`',
        '',
        f'One forward of {config} (random weights) per run, batch 1, float32, {comparison["threads"]} threads for '
        'all, taking turns run by run (the first run of each is included and doubles as warm-up), '
        'with the fixed mmap threshold that importing cnlrn_arch sets. PyTorch runs the path `cnlrn infer` and '
        '`basicsr test` run, before (NCHW weights, whose convolutions reorder them for the NHWC maps at every '
        'call) and now (channels-last, the CPU default); onnxruntime runs the graph of `cnlrn export --onnx` '
        f'(default opset), whose attention writes out the score matrix. CPU flags: '
        f'{comparison["cpu_flags"] or "unknown"}. The floor is the FLOPs at {peak["gflops"]:.0f} GFLOP/s, the '
        f'best rate measured in this process ({peak["library"]}, {peak["shape"]}).',
        '',
        *markdown_table(columns, rows),
        '',
        "onnxruntime time / PyTorch time (default), turn by turn (a turn's runs share the load of the moment):",
        '',
        *ratio_lines,
    ]
    profile = comparison.get('profile')
    if profile:
        torch_kinds, ort_kinds = profile['torch']['kinds'], profile['onnxruntime']['kinds']
        work = profile['flops']

        def rate(kinds, kind):
            return f'{work[kind] / kinds[kind] / 1e9:.0f}' if kind in work and kinds[kind] > 0 else ''

        kind_rows = [
            [
                kind,
                f'{torch_kinds[kind]:.2f}',
                f'{ort_kinds[kind]:.2f}',
                f'{torch_kinds[kind] - ort_kinds[kind]:+.2f}',
                rate(torch_kinds, kind),
                rate(ort_kinds, kind),
            ]
            for kind in torch_kinds
        ]
        total_torch, total_ort = sum(torch_kinds.values()), sum(ort_kinds.values())
        kind_rows.append(['total', f'{total_torch:.2f}', f'{total_ort:.2f}', f'{total_torch - total_ort:+.2f}', '', ''])
        top_rows = [
            [t[0] if t else '', f'{t[1]:.2f}' if t else '', o[0] if o else '', f'{o[1]:.2f}' if o else '']
            for t, o in itertools.zip_longest(profile['torch']['top'], profile['onnxruntime']['top'])
        ]
        lines += [
            '',
            f'### Where the time goes at {size_label(profile["size"])}: one profiled forward of each, seconds',
            '',
            'PyTorch: torch.profiler, own CPU time of each operator (its fused attention kernel holds the attention '
            'products and softmax); onnxruntime: its own profiler, the kernel time of each node.',
            '',
            *markdown_table(
                ['kind of work', 'PyTorch (s)', 'onnxruntime (s)', 'PyTorch - onnxruntime (s)']
                + ['PyTorch GFLOP/s', 'onnxruntime GFLOP/s'],
                kind_rows,
            ),
            '',
            f"The peak both are held to: {peak['gflops']:.0f} GFLOP/s. Convolution FLOPs are FlopCounterMode's; "
            "the products are the attention's (by formula) and the 1x1 embeddings'.",
            '',
            *markdown_table(['PyTorch operator', 's', 'onnxruntime operator', 's'], top_rows),
        ]
    return lines


def speed_chart(runs, path):
    """Per inference case: median time beside its FLOP floor, and activation memory."""
    plt = pyplot()
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    for run in runs:
        rows = [r for r in run['cases'] if r['kind'] == 'inference' and 'error' not in r]
        labels = [f'{run["device_short"]}\n{size_label(r["size"])}\n{r["impl"]} {r["precision"]}' for r in rows]
        positions = range(len(rows))
        floors = [floor_of(r, run) for r in rows]
        ax_time.bar([p - 0.2 for p in positions], [r['median_s'] for r in rows], 0.4, label='measured')
        ax_time.bar([p + 0.2 for p in positions], floors, 0.4, label='FLOP floor')
        ax_time.set_xticks(list(positions), labels, fontsize=7)
        ax_mem.bar(list(positions), [r['activation_bytes'] / GB for r in rows])
        ax_mem.set_xticks(list(positions), labels, fontsize=7)
    ax_time.set_yscale('log')
    ax_time.set_ylabel('seconds per forward (log)')
    ax_time.legend()
    ax_mem.set_ylabel('activation memory (GB)')
    save_figure(fig, path)


def write_report(out_dir):
    runs = []
    for path in sorted(glob.glob(osp.join(out_dir, 'results_*.json'))):
        with open(path, encoding='utf-8') as f:
            runs.append(json.load(f))
    lines = [
        '# CNLRN speed and memory',
        '',
        'Made by `cnlrn bench` (see `cnlrn bench --help`); each case runs in a fresh process. '
        '"naive" is the explicit score-matrix attention of the authors\' release, one head at a time; '
        '"sdpa" is the default path. ![speed](speed.png)',
        '',
    ]
    for run in runs:
        lines += device_section(run) + ['']
    comparison_path = osp.join(out_dir, ONNXRUNTIME_RESULTS)
    if osp.isfile(comparison_path):
        with open(comparison_path, encoding='utf-8') as f:
            lines += onnxruntime_section(json.load(f)) + ['']
    with open(osp.join(out_dir, 'RESULTS.md'), 'w') as f:
        f.write('\n'.join(lines))
    if runs:
        speed_chart(runs, osp.join(out_dir, 'speed.png'))
    return lines
