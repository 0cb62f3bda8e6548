// Stand-in for bootstrap-tagsinput (Grafana's public/vendor/tagsinput): a no-op jQuery plugin.
import $ from 'jquery';

if (!$.fn.tagsinput) {
  $.fn.tagsinput = function () {
    return this;
  };
}
