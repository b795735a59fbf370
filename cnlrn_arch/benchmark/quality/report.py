"""What ``cnlrn bench-quality`` writes: QUALITY.md and quality.png, both from the numbers of quality.json.

Keeping the rendering a function of the JSON alone lets ``--report-only``
rewrite the table, the ordering check and the chart without training again.
"""

import json
from os import path as osp

from ...evaluation import CROP_BORDER
from ...reporting import markdown_table, pyplot, save_figure
from .variants import PRETRAIN_SHARE

MD, PNG, JSON = 'QUALITY.md', 'quality.png', 'quality.json'
# the paper's ordering on REDS, worst first: each level should beat every row of the one before
ORDER = (('bicubic', 'bicubic'), ('baseline', 'RCAN / RRDBNet'), ('cascade', 'SRN+RCAN'), ('ours', 'CNLRN'))
INTERFACE_KEYS = {'n_colors', 'num_in_ch', 'num_out_ch', 'scale', 'upscale', 'img_range', 'rgb_mean'}
COLOURS = {
    'bicubic': 'gray',
    'baseline': 'tab:blue',
    'cascade': 'tab:orange',
    'ours': 'tab:red',
    'ablation': 'tab:purple',
}


def _write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def write_json(result, out):
    _write(osp.join(out, JSON), json.dumps(result, indent=1) + '\n')


def read_json(out):
    with open(osp.join(out, JSON), encoding='utf-8') as f:
        return json.load(f)


def network_text(network):
    """``type(size settings)``: the interface settings (channels, scale, colour range), equal for all, left out."""
    args = ', '.join(
        f'{k}={network_text(v) if isinstance(v, dict) else v}'
        for k, v in network.items()
        if k != 'type' and k not in INTERFACE_KEYS
    )
    return f'{network["type"]}({args})'


def _paper(numbers):
    return f'{numbers[0]:.3f} / {numbers[1]:.4f}' if numbers else '—'


def table(result):
    bicubic = result['bicubic']
    columns = [
        'method',
        'option file scaled down',
        'parameters',
        'PSNR (dB)',
        'SSIM',
        'vs bicubic',
        'training (s)',
        'inference (ms / image)',
        'paper, REDS Val300 PSNR / SSIM',
    ]
    rows = [
        [
            'bicubic upsampling of the blurry LR',
            '—',
            '—',
            f'{bicubic["psnr"]:.2f}',
            f'{bicubic["ssim"]:.4f}',
            '',
            '—',
            '—',
            _paper(bicubic['paper']),
        ]
    ]
    rows += [
        [
            row['label'],
            f'`{row["option"]}`',
            f'{row["params"] / 1e6:.2f} M',
            f'{row["psnr"]:.2f}',
            f'{row["ssim"]:.4f}',
            f'{row["psnr"] - bicubic["psnr"]:+.2f} dB',
            f'{row["train_s"]:.0f}',
            f'{1000 * row["infer_s"]:.0f}',
            _paper(row['paper']),
        ]
        for row in result['rows']
    ]
    return '\n'.join(markdown_table(columns, rows))


def _last_gain(row):
    """PSNR gained between the last two evaluations (the last quarter of the budget by default)."""
    curve = row['curve']
    return curve[-1]['psnr'] - curve[-2]['psnr'] if len(curve) > 1 else float('nan')


def _pair_note(lower, higher):
    """One line: did ``higher`` beat ``lower`` as the paper says, and was a missing gap closing?"""
    delta = higher['psnr'] - lower['psnr']
    text = f'{lower["label"]} {lower["psnr"]:.2f} dB < {higher["label"]} {higher["psnr"]:.2f} dB'
    if delta > 0:
        return f'- held ({delta:+.2f} dB): {text}'
    if 'curve' not in lower:  # against bicubic, nothing to converge
        return f'- did not hold ({delta:+.2f} dB): {text}'
    closing = 'closing' if _last_gain(higher) > _last_gain(lower) else 'not closing'
    return (
        f'- did not hold ({delta:+.2f} dB): {text}; the gap was {closing} at the end of the budget '
        f'({higher["label"]} {_last_gain(higher):+.2f} dB over the last evaluation interval, '
        f'{lower["label"]} {_last_gain(lower):+.2f} dB)'
    )


def ordering(result):
    """The paper's ordering checked level by level, then each ablation against CNLRN."""
    bicubic = dict(result['bicubic'], label='bicubic')
    levels = [
        (name, [bicubic] if group == 'bicubic' else [r for r in result['rows'] if r['group'] == group])
        for group, name in ORDER
    ]
    levels = [(name, rows) for name, rows in levels if rows]
    lines = []
    for (low_name, lows), (high_name, highs) in zip(levels, levels[1:]):
        lines.append(f'{low_name} < {high_name}:')
        lines += [_pair_note(low, high) for low in lows for high in highs]
    ours = [r for r in result['rows'] if r['group'] == 'ours']
    ablations = [r for r in result['rows'] if r['group'] == 'ablation']
    if ours and ablations:
        lines.append('each ablation < CNLRN:')
        lines += [_pair_note(ablation, ours[0]) for ablation in ablations]
    return '\n'.join(lines)


def curve_table(result):
    rows = result['rows']
    iters = [point['iter'] for point in rows[0]['curve']] if rows else []
    cells = [[row['label']] + [f'{p["psnr"]:.2f}' for p in row['curve']] for row in rows]
    return '\n'.join(markdown_table(['method'] + [f'after {i} it.' for i in iters], cells))


def markdown(result):
    s, m = result['settings'], result['machine']
    val = result['val']
    return (
        f"""# Equal-budget quality benchmark

CNLRN, each of its ablations and the baselines of the paper's Table 1, scaled down to about the same number of
parameters and trained for the same {s['iters']} iterations on the same data, then scored on held-out images.
The point is a like-for-like comparison of the recipes at a budget a laptop affords, not the paper's numbers:
those are REDS Val300 after 1M iterations at full size, shown for reference only.

- **command**: `{result['command']}` ({result['date']}, {result['wall_s'] / 60:.1f} min wall time)
- **machine**: {m['cpu']}, {m['cpus']} CPUs, {m['threads']} torch threads (OMP_NUM_THREADS={m['omp_num_threads']}),
  device {m['device']}; torch {m['torch']}, basicsr {m['basicsr']}
- **data**: `{s['data']}` (`cnlrn make-demo-data`: {s['data_header']}); training on its LMDBs, scoring on
  its {val['count']} held-out 256x256 tiles (`val/`, photos never trained on): PSNR and SSIM on RGB,
  {CROP_BORDER}-pixel border cropped (basicsr.metrics, as `cnlrn demo`)
- **budget, the same for every variant**: {s['iters']} iterations, batch {s['batch']}, LR patch
  {s['gt_size'] // 4} (HR {s['gt_size']}), flips and rotations, seed {s['seed']}, the same batches in the same
  order; Adam at the demo's learning rates (`options/demo/joint.yml`: {s['lr']:g}, {s['lr_deblur']:g} for a
  pre-trained deblurring module where the recipe gives it its own rate), cosine decay to {s['eta_min']:g}
- **two-stage recipes** (CNLRN, SRN+RCAN and the ablations that start from a pre-trained deblurring module):
  the first {PRETRAIN_SHARE:.0%} of the iterations ({s['pretrain_iters']}) pre-train the deblurring module with
  its image head against the sharp LR (L1, `options/pretrain.yml`), the rest train the whole network as the
  recipe says; training time counts both stages. One-stage recipes (RCAN, RRDBNet, no deblurring module)
  train the whole network for all iterations
- **sizes**: CNLRN and its ablations have the demo's size (`options/demo/joint.yml`); RCAN, RRDBNet and
  SRN+RCAN's RCAN get the block count that brings their parameters closest to the demo CNLRN's. The ablations
  keep CNLRN's size with their switch flipped, as in the paper's ablation tables, so the one without the
  deblurring module has far fewer parameters and the one without non-local blocks slightly fewer
- **times**: training time is the sum of the training steps (data loading included; model building and the
  evaluations excluded); inference is the mean per held-out image (LR {val['lr_size']}) at the end

"""
        + '\n'.join(
            markdown_table(
                ['variant', 'network (scaled down)'],
                [[r['label'], f'`{network_text(r["network"])}`'] for r in result['rows']],
            )
        )
        + f"""

## Results

{table(result)}

Paper numbers: REDS Val300 as published for CNLRN and for bicubic upsampling (see README.md). The baselines'
and ablations' published numbers are not recorded in this project's reference notes; they are left as "—"
rather than quoted from memory.

![PSNR per variant and learning curves]({PNG})

## Did the paper's ordering hold at this budget?

The paper's ordering on REDS is bicubic < RCAN / RRDBNet < cascades (SRN+RCAN) < CNLRN, and every ablation
below CNLRN. Here:

{ordering(result)}

Held-out PSNR (dB) during training, the evidence for whether a variant was still improving when the budget ran
out:

{curve_table(result)}
"""
    )


def chart(result, path):
    """PSNR bars per variant (coloured by the paper's groups) with bicubic as a line, and the learning curves."""
    plt = pyplot()
    bicubic = result['bicubic']['psnr']
    rows = result['rows']
    fig, (bars, curves) = plt.subplots(
        1, 2, figsize=(12, 0.45 * len(rows) + 2.5), dpi=120, gridspec_kw=dict(width_ratios=(3, 2))
    )
    labels = [f'{r["label"]} ({r["params"] / 1e6:.1f} M)' for r in rows]
    bars.barh(labels, [r['psnr'] for r in rows], color=[COLOURS[r['group']] for r in rows])
    for y, row in enumerate(rows):
        bars.text(row['psnr'], y, f' {row["psnr"]:.2f}', va='center', fontsize=8)
    low = min([bicubic] + [r['psnr'] for r in rows])
    high = max([bicubic] + [r['psnr'] for r in rows])
    bars.set_xlim(low - 0.5, high + 0.4)
    bars.invert_yaxis()
    bars.set_xlabel('held-out PSNR (dB)')
    for ax in (bars, curves):
        ax.grid(alpha=0.3)
    bars.axvline(bicubic, color=COLOURS['bicubic'], linestyle='--', label=f'bicubic ({bicubic:.2f} dB)')
    bars.legend(loc='lower right', fontsize=8)
    bars.set_title(f'{result["settings"]["iters"]} iterations each (parameters in brackets)')
    for row in rows:
        # a colour per variant here: several share a group
        curves.plot(
            [p['iter'] for p in row['curve']],
            [p['psnr'] for p in row['curve']],
            marker='o',
            label=row['label'],
            alpha=0.8,
        )
    curves.axhline(bicubic, color=COLOURS['bicubic'], linestyle='--')
    curves.set_xlabel('iteration')
    curves.set_ylabel('held-out PSNR (dB)')
    curves.set_title('during training')
    curves.legend(fontsize=7, loc='best')
    save_figure(fig, path)


def write_report(result, out):
    """Write OUT/QUALITY.md and OUT/quality.png; return their paths."""
    md, png = osp.join(out, MD), osp.join(out, PNG)
    _write(md, markdown(result))
    chart(result, png)
    return md, png
