import { render } from 'preact';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { App } from './app.js';
import { html } from './html.js';

render(html`<${App} />`, document.getElementById('app')!);
