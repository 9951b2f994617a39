import "../src/lib/polyfills";
