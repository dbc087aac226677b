// esbuild bundles imported stylesheets into the CSS output; to the type checker they are nothing.
declare module '*.css';
