// Changes: the daemon's record of an operation on a chute, step by step.

import {getJSON} from './api.js';
import {announce, h} from './dom.js';
import {clock} from './format.js';

const pollMs = 300;

export const isDone = (change) => change.state === 'done' || change.state === 'failed';

// stepList renders a change's steps as an ordered list.
export function stepList(change) {
  const items = (change.steps || []).map((step) =>
    h('li', {}, h('time', {datetime: step.time}, clock(step.time)), ' ', step.message));
  if (change.error) items.push(h('li', {class: 'failed'}, `Failed: ${change.error}`));
  return h('ol', {class: 'steps'}, items);
}

export function changeSummary(change) {
  return `${change.action} ${change.chute}: ${change.state}`;
}

// followChange polls change id into panel (its title, state and steps) every
// 300 ms until it ends, announcing each new step. Resolves to the change.
export async function followChange(id, panel, signal) {
  let seen = 0;
  for (;;) {
    const change = await getJSON(`/api/v1/changes/${id}`, {signal});
    const steps = change.steps || [];
    if (steps.length > seen) announce(steps[steps.length - 1].message);
    seen = steps.length;
    panel.replaceChildren(
      h('p', {class: change.state === 'failed' ? 'error' : ''}, `Change ${change.id}: `, changeSummary(change)),
      stepList(change));
    panel.dataset.state = change.state;
    if (isDone(change)) {
      announce(changeSummary(change));
      return change;
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    if (signal?.aborted) return change;
  }
}

// changePanel is an empty, labelled live region for followChange.
export function changePanel(label) {
  return h('div', {class: 'change', role: 'status', 'aria-label': label});
}
