"""What ``cnlrn bench-quality`` writes: QUALITY.md and quality.png, both from the numbers of quality.json.

Keeping the rendering a function of the JSON alone lets ``--report-only``
rewrite the table, the statistics and the chart without training again.
"""

import json
from os import path as osp

import numpy as np

from cnlrn_arch.reports.pictures import markdown_table, pyplot, save_figure
from cnlrn_arch.reports.scores import CROP_BORDER
from cnlrn_tools.quality.recipes import schedule_text
from cnlrn_tools.quality.stats import SE_MULTIPLE, ordering_sentences, resolved

MD, PNG, JSON = 'QUALITY.md', 'quality.png', 'quality.json'
FORMAT = 2  # quality.json: 2 adds seeds (runs per row), budgets in seconds and recipes
INTERFACE_KEYS = {'n_colors', 'num_in_ch', 'num_out_ch', 'scale', 'upscale', 'img_range', 'rgb_mean'}
GROUP_NAMES = {
    'baseline': 'SR network alone',
    'cascade': 'deblurring + SR cascade',
    'ours': 'CNLRN',
    'gan': 'GAN fine-tune',
    'ablation': 'CNLRN ablation',
}
SCALED_DOWN = (
    "CNLRN and its ablations have the demo's size (`options/demo/joint.yml`); RCAN, RRDBNet and the cascades' SR\n"
    "networks get the block count that brings their parameters closest to it; the ablations keep CNLRN's size with\n"
    "their switch flipped; the GAN fine-tunes keep their generator's network"
)
FULL_SIZE = 'as the REDS option files have them, with their batch and patch (`--full-size`)'
COLOURS = {
    'bicubic': 'gray',
    'baseline': 'tab:blue',
    'cascade': 'tab:orange',
    'ours': 'tab:red',
    'gan': 'tab:green',
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


def mean_std(stat, digits=2):
    """'mean ± standard deviation', or the mean alone when there is no spread measured."""
    if stat['std'] is None or stat['n'] == 1 and stat['std'] == 0:
        return f'{stat["mean"]:.{digits}f}'
    return f'{stat["mean"]:.{digits}f} ± {stat["std"]:.{digits}f}'


def _paper(numbers):
    return f'{numbers[0]:.3f} / {numbers[1]:.4f}' if numbers else '—'


def _link(source):
    return (
        f'[{source.rsplit("/", 3)[-2]}/{source.rsplit("/", 1)[-1]}]({source})' if source.startswith('http') else source
    )


def budget_text(settings):
    budget = settings['budget']
    if budget['unit'] == 'iters':
        return f'{budget["amount"]:g} iterations'
    return f'{budget["amount"]:g} s of training wall time'


def methods(result):
    """bicubic and every row as the statistics read them: label, PSNR mean/std/n and the paper's numbers."""
    bicubic = dict(result['bicubic']['psnr'], label='bicubic', paper=result['bicubic']['paper'])
    return [bicubic] + [dict(row['psnr'], label=row['label'], paper=row['paper']) for row in result['rows']]


def table(result):
    bicubic = result['bicubic']
    columns = [
        'method',
        'option file',
        'parameters',
        'PSNR (dB)',
        'SSIM',
        'vs bicubic',
        'iterations',
        'training (s)',
        'inference (ms / image)',
        'paper, REDS Val300 PSNR / SSIM',
    ]
    rows = [
        [
            'bicubic upsampling of the blurry LR',
            '—',
            '—',
            mean_std(bicubic['psnr']),
            mean_std(bicubic['ssim'], 4),
            '',
            '—',
            '—',
            '—',
            _paper(bicubic['paper']),
        ]
    ]
    for row in result['rows']:
        runs = row['runs']
        iters = [r['iters'] for r in runs]
        rows.append(
            [
                row['label'],
                f'`{row["option"]}`',
                f'{row["params"] / 1e6:.2f} M',
                mean_std(row['psnr']),
                mean_std(row['ssim'], 4),
                f'{row["psnr"]["mean"] - bicubic["psnr"]["mean"]:+.2f} dB',
                f'{np.mean(iters):.0f} ({min(iters)}-{max(iters)})' if len(runs) > 1 else str(iters[0]),
                f'{np.mean([r["train_s"] for r in runs]):.0f}',
                f'{1000 * np.mean([r["infer_s"] for r in runs]):.0f}',
                _paper(row['paper']),
            ]
        )
    return '\n'.join(markdown_table(columns, rows))


def _rates(recipe, factor):
    rates = [f'{recipe["lr"] * factor:g}']
    if recipe['lr_deblur'] is not None:
        rates.append(f'{recipe["lr_deblur"] * factor:g} (pre-trained deblurring module)')
    if recipe['lr_d'] is not None:
        rates.append(f'{recipe["lr_d"] * factor:g} (discriminator)')
    return ', '.join(rates)


def _sweep_text(row):
    if not row['sweep']:
        return ''
    tried = ', '.join(f'x{t["factor"]:g} {t["psnr"]:.2f} dB' for t in row['sweep'])
    return f" (the recipe's x{row['lr_factor']:g}; swept: {tried})"


def recipes_table(result):
    """Per method: rates, schedule shape, losses, and where the recipe is published."""
    settings = result['settings']
    pre = settings['pretrain_recipe']
    rows = [
        [
            row['label'],
            _rates(row['recipe'], row['lr_factor']) + _sweep_text(row),
            schedule_text(row['recipe']['scheduler'], row['recipe']['total_iter']),
            row['recipe']['loss'],
            _link(row['recipe']['source']),
        ]
        for row in result['rows']
    ]
    rows.append(
        [
            'pre-training of the deblurring module (two-stage recipes)',
            _rates(pre, 1),
            schedule_text(pre['scheduler'], pre['total_iter']),
            pre['loss'] + ' against the sharp LR',
            _link(pre['source']),
        ]
    )
    return '\n'.join(markdown_table(['method', 'learning rate', 'schedule over the budget', 'loss', 'source'], rows))


def significance_table(result):
    """Row minus column mean PSNR; in bold where it exceeds twice the combined standard error."""
    every = methods(result)
    cells = []
    for a in every:
        line = [a['label']]
        for b in every:
            if a is b:
                line.append('')
                continue
            text = f'{a["mean"] - b["mean"]:+.2f}'
            line.append(f'**{text}**' if resolved(a, b) else text)
        cells.append(line)
    return '\n'.join(markdown_table(['row − column (dB)'] + [m['label'] for m in every], cells))


def ordering(result):
    """Our order by mean PSNR beside the paper's, then what the data say about each of the paper's orderings."""
    every = methods(result)
    published = [m for m in every if m['paper']]
    ours = ' > '.join(m['label'] for m in sorted(published, key=lambda m: m['mean'], reverse=True))
    paper = ' > '.join(m['label'] for m in sorted(published, key=lambda m: m['paper'], reverse=True))
    return f'- paper (Val300): {paper}\n- here (mean PSNR): {ours}\n\n' + '\n\n'.join(ordering_sentences(every))


def curve_table(result):
    """Mean held-out PSNR over seeds after each share of the last stage's budget."""
    rows = [row for row in result['rows'] if row['runs'][0]['curve']]
    shares = [p['share'] for p in rows[0]['runs'][0]['curve']] if rows else []
    cells = [
        [row['label']] + [f'{np.mean([r["curve"][i]["psnr"] for r in row["runs"]]):.2f}' for i in range(len(shares))]
        for row in rows
    ]
    return '\n'.join(markdown_table(['method'] + [f'after {s:.0%}' for s in shares], cells))


def markdown(result):
    s, m = result['settings'], result['machine']
    val = result['val']
    seeds = s['seeds']
    gan_note = f'\n- **not run**: {s["gan_note"]}' if s.get('gan_note') else ''
    factors = ', x'.join(f'{f:g}' for f in s['lr_sweep'] or ())
    sweep = (
        f'\n- **learning-rate sweep** (`--lr-sweep`): each recipe at x{factors} its '
        f'rates, seed 0, scored on {len(val["sweep_names"])} held-out images kept apart from the scoring ones '
        f'({", ".join(val["sweep_names"])}); the best factor is used for the runs below'
        if s['lr_sweep']
        else ''
    )
    return (
        f"""# Equal-budget quality benchmark

CNLRN, its ablations, the baselines of the paper's Table 1 and their GAN-trained versions, scaled to about the
same number of parameters, each trained with its own published recipe for the same budget ({budget_text(s)})
on the same data from {seeds} seeds, then scored on held-out images. The point is a like-for-like comparison
of the methods at a budget this machine affords; the paper's numbers (REDS Val300 after about 1M iterations at
full size) stand beside ours for the ordering, not for the values.

- **command**: `{result['command']}` ({result['date']}, {result['wall_s'] / 60:.1f} min wall time)
- **machine**: {m['cpu']}, {m['cpus']} CPUs, {m['threads']} torch threads (OMP_NUM_THREADS={m['omp_num_threads']}),
  device {m['device']}{', bf16 autocast' if s['amp'] else ''}; torch {m['torch']}, basicsr {m['basicsr']};
  one method at a time
- **data**: `{s['data']}` ({s['data_header']}); training on its LMDBs, scoring on {val['count']} held-out images
  (LR {val['lr_size']}, never trained on): PSNR and SSIM on RGB, {CROP_BORDER}-pixel border cropped
  (basicsr.metrics){sweep}
- **budget, the same for every method and seed**: {budget_text(s)}, batch {s['batch']}, LR patch
  {s['gt_size'] // 4} (HR {s['gt_size']}), flips and rotations; seeds 0 to {seeds - 1} change the initialisation
  and the batch order, not the data. Training time is the sum of the training steps (data loading included;
  model building and evaluations excluded); the iterations each method completed are in the table. A
  wall-time budget assumes an otherwise idle machine: other load takes iterations from whichever method runs
- **two-stage recipes** (CNLRN, the cascades and the ablations that start from a pre-trained deblurring module):
  the first {s['pretrain_share']:.0%} of the budget pre-trains the deblurring module with its image head against
  the sharp LR; **GAN fine-tunes** (ESRGAN, CNLRN-GAN) spend the first {1 - s['gan_share']:.0%} of the budget on
  their generator's own recipe (RRDBNet's, CNLRN's) and the rest on the GAN recipe from that network, with HR
  patches of 128 (the discriminator's input size). Every stage counts against the budget
- **schedules**: each recipe's schedule, written for its total iterations, is stretched over the budget (the
  learning rate after a share p of the budget is the recipe's at p x its total iterations); no EMA
- **sizes**: {FULL_SIZE if s['full_size'] else SCALED_DOWN}{gan_note}

"""
        + '\n'.join(
            markdown_table(
                ['method', 'network'],
                [[r['label'], f'`{network_text(r["network"])}`'] for r in result['rows']],
            )
        )
        + f"""

## Results

PSNR and SSIM: mean ± standard deviation over {seeds} seeds. Paper: REDS Val300 as published (Tables 1, 4, 5
and 6; `frozen_deblur` is Table 5's "SRN+NLRN, trained separately"); the GAN fine-tunes have none.

{table(result)}

![PSNR per method with its spread over seeds, and the learning curves]({PNG})

The GAN fine-tunes optimise a perceptual and an adversarial loss, not PSNR: a lower PSNR is their expected
price for sharper texture, not a failure.

## Recipes

{recipes_table(result)}

## Which differences the spread resolves

Mean PSNR of the row minus the column; **bold** where the difference exceeds {SE_MULTIPLE} times the combined
standard error of the two means (sqrt(s1²/n1 + s2²/n2), s the standard deviation over seeds; bicubic has none).

{significance_table(result)}

## Our ordering and the paper's

{ordering(result)}

Held-out PSNR (dB, mean over seeds) during the last stage, the evidence for whether a method was still
improving when the budget ran out:

{curve_table(result)}
"""
    )


def chart(result, path):
    """PSNR bars with error bars per method (coloured by the paper's groups), bicubic as a line, learning curves."""
    plt = pyplot()
    bicubic = result['bicubic']['psnr']['mean']
    rows = result['rows']
    fig, (bars, curves) = plt.subplots(
        1, 2, figsize=(12, 0.45 * len(rows) + 2.5), dpi=120, gridspec_kw=dict(width_ratios=(3, 2))
    )
    labels = [f'{r["label"]} ({r["params"] / 1e6:.1f} M)' for r in rows]
    means = [r['psnr']['mean'] for r in rows]
    stds = [r['psnr']['std'] or 0 for r in rows]
    bars.barh(labels, means, xerr=stds, capsize=3, color=[COLOURS[r['group']] for r in rows])
    for y, (mean, std) in enumerate(zip(means, stds)):
        bars.text(mean + std, y, f' {mean:.2f}', va='center', fontsize=8)
    low = min([bicubic] + [m - s for m, s in zip(means, stds)])
    high = max([bicubic] + [m + s for m, s in zip(means, stds)])
    bars.set_xlim(low - 0.5, high + 0.5)
    bars.invert_yaxis()
    bars.set_xlabel(f'held-out PSNR (dB), mean ± std over {result["settings"]["seeds"]} seeds')
    for ax in (bars, curves):
        ax.grid(alpha=0.3)
    from matplotlib.patches import Patch  # after pyplot() chose the backend

    line = bars.axvline(bicubic, color=COLOURS['bicubic'], linestyle='--', label=f'bicubic ({bicubic:.2f} dB)')
    groups = dict.fromkeys(r['group'] for r in rows)
    bars.legend(
        handles=[line] + [Patch(color=COLOURS[g], label=GROUP_NAMES[g]) for g in groups], loc='lower right', fontsize=8
    )
    bars.set_title(f'{budget_text(result["settings"])} each (parameters in brackets)')
    for row in rows:
        runs = row['runs']
        if not runs[0]['curve']:
            continue
        # a colour per method here: several share a group
        curves.plot(
            [100 * p['share'] for p in runs[0]['curve']],
            np.mean([[p['psnr'] for p in r['curve']] for r in runs], axis=0),
            marker='o',
            label=row['label'],
            alpha=0.8,
        )
    curves.axhline(bicubic, color=COLOURS['bicubic'], linestyle='--')
    curves.set_xlabel("share of the last stage's budget (%)")
    curves.set_ylabel('held-out PSNR (dB), mean over seeds')
    curves.set_title('during training')
    curves.legend(fontsize=7, loc='best')
    save_figure(fig, path)


def write_report(result, out):
    """Write OUT/QUALITY.md and OUT/quality.png; return their paths."""
    md, png = osp.join(out, MD), osp.join(out, PNG)
    _write(md, markdown(result))
    chart(result, png)
    return md, png
