// Templates as tagged strings (htm), so the console needs no JSX compile step.
import htm from 'htm';
import { h } from 'preact';

export const html = htm.bind(h);
