// Stand-in for SystemJS's "text" loader plugin (Grafana's public/vendor/plugin-text/text.js):
// a module loaded with it exports the fetched file's source as a string. SystemJS loads this
// file at run time and guesses its format from its source, so the AMD keyword is assembled
// rather than written out: the file itself must read as CommonJS.
var AMD_DEFINE = ['def', 'ine'].join('');

exports.translate = function (load) {
  load.metadata.format = 'amd';
  return AMD_DEFINE + '(function () { return ' + JSON.stringify(load.source) + '; });';
};
