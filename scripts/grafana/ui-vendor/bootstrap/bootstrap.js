// Stand-in for Bootstrap 2's jQuery plugins (Grafana's public/vendor/bootstrap/bootstrap.js).
// Grafana's legacy Angular directives call $.fn.tooltip, .typeahead, .modal ... and read their
// .defaults / .Constructor; each is defined as a no-op so that code loads and does nothing.
import $ from 'jquery';

function Inert() {}
Inert.prototype.show = Inert.prototype.hide = Inert.prototype.toggle = function () {};
Inert.prototype.getPosition = function () {
  return { top: 0, left: 0, width: 0, height: 0 };
};
Inert.prototype.tip = function () {
  if (!this.$tip) {
    this.$tip = $('<div class="tooltip"></div>');
  }
  return this.$tip;
};

var names = ['affix', 'alert', 'button', 'carousel', 'collapse', 'dropdown', 'modal', 'popover', 'scrollspy', 'tab', 'tooltip', 'typeahead'];
names.forEach(function (name) {
  if ($.fn[name]) {
    return;
  }
  $.fn[name] = function () {
    return this;
  };
  $.fn[name].defaults = {};
  $.fn[name].Constructor = Inert;
});
