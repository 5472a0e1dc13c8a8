// MathJax settings for the $...$ and $$...$$ formulas (pymdownx.arithmatex, generic mode).
// MathJax itself (tex-svg-full.js) is a copy inside the site (docs/hooks/mathjax.py): SVG
// output draws the glyphs as paths, so no font or other file is fetched.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  svg: {
    fontCache: "global",
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
