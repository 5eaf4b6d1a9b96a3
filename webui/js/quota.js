// Quota: what a developer's chutes hold of each field of its quota, next
// to the bound, as the daemon's admission counts it (a developer's "used"
// and "quota"; a zero bound is no bound).

import {h} from './dom.js';
import {bitsPerSecond, bytes} from './format.js';

const fields = [
  {key: 'chutes', label: 'Chutes', show: String},
  {key: 'cpu', label: 'CPU', show: (v) => `${Number(v.toFixed(2))} core${v === 1 ? '' : 's'}`},
  {key: 'memory', label: 'Memory', show: bytes},
  {key: 'disk', label: 'Disk', show: bytes},
  {key: 'egress', label: 'Egress', show: (v) => bitsPerSecond(v / 8)},
];

// quotaList renders used / bound of every field of developer d, with a
// meter where there is a bound; a field over its bound (lowered since)
// is marked.
export function quotaList(d, attrs = {}) {
  return h('dl', {class: 'quota', ...attrs}, fields.flatMap((f) => {
    const used = d.used?.[f.key] || 0;
    const bound = d.quota?.[f.key] || 0;
    const over = bound > 0 && used > bound;
    return [
      h('dt', {}, f.label),
      h('dd', {dataset: {quota: f.key}, class: over ? 'over' : null},
        h('span', {class: 'used'}, `${f.show(used)} / ${bound ? f.show(bound) : 'no bound'}`),
        bound ? h('meter', {min: 0, max: bound, high: bound * 0.9, value: Math.min(used, bound), 'aria-label': `${f.label}: used of the quota`}) : null),
    ];
  }));
}
