/*
 * A small flot "gauges" plugin, standing in for the one in Grafana's public/vendor (not in
 * the Go module zip). It draws what Grafana's React Gauge component asks for
 * (packages/grafana-ui/src/components/Gauge/Gauge.tsx): a 270-degree track, the value's arc
 * (from neutralValue when set), the threshold colours as an outer ring, optional threshold
 * labels and the formatted value in the middle. Good enough for screenshots and demos.
 */
(function ($) {
  var FROM = 0.75 * Math.PI; // 7.5 o'clock
  var SWEEP = 1.5 * Math.PI; // to 4.5 o'clock

  var defaults = {
    series: {
      gauges: {
        show: false,
        gauge: { min: 0, max: 100, width: 20, background: { color: '#333' } },
        threshold: { values: [], show: true, width: 4, label: { show: false, font: { size: 12 } } },
        value: { color: '#ccc', formatter: null, font: { size: 20, family: 'sans-serif' } },
      },
    },
  };

  function angle(v, min, max) {
    var f = max > min ? (v - min) / (max - min) : 0;
    return FROM + Math.max(0, Math.min(1, f)) * SWEEP;
  }

  function arc(ctx, x, y, r, a0, a1, width, color) {
    if (a1 <= a0) {
      return;
    }
    ctx.beginPath();
    ctx.lineWidth = width;
    ctx.strokeStyle = color;
    ctx.arc(x, y, r, a0, a1, false);
    ctx.stroke();
  }

  function draw(plot, ctx) {
    var o = plot.getOptions().series.gauges;
    var data = plot.getData();
    if (!data.length || !data[0].data.length) {
      return;
    }
    var value = data[0].data[0][1];
    var w = plot.getPlaceholder().width();
    var h = plot.getPlaceholder().height();
    var min = Number(o.gauge.min);
    var max = Number(o.gauge.max);
    var ring = o.threshold.show ? o.threshold.width : 0;
    var fontSize = (o.threshold.label.font && o.threshold.label.font.size) || 12;
    var pad = o.threshold.label.show ? fontSize * 2.5 : 0;
    // a 270-degree arc is r * (1 + sin 45deg) tall; labels at its ends need a line below it
    var room = h - (o.threshold.label.show ? fontSize * 1.5 : 0);
    var outer = Math.max(4, Math.min(w / 2 - pad, room / (1 + Math.SQRT1_2)) - 2);
    var x = w / 2;
    var y = (room - outer * (1 + Math.SQRT1_2)) / 2 + outer;
    var width = Math.min(o.gauge.width, outer / 2);
    var r = outer - ring - (ring ? 2 : 0) - width / 2;

    ctx.save();
    arc(ctx, x, y, r, FROM, FROM + SWEEP, width, o.gauge.background.color);
    if (typeof value === 'number' && !isNaN(value)) {
      var base = o.gauge.neutralValue == null ? FROM : angle(o.gauge.neutralValue, min, max);
      var at = angle(value, min, max);
      arc(ctx, x, y, r, Math.min(base, at), Math.max(base, at), width, o.value.color);
    }
    var steps = o.threshold.values || [];
    if (ring > 0) {
      // step i colours the band from step i-1 up to step i; a single step colours it all
      if (steps.length === 1) {
        arc(ctx, x, y, outer - ring / 2, FROM, FROM + SWEEP, ring, steps[0].color);
      }
      for (var i = 1; i < steps.length; i++) {
        arc(ctx, x, y, outer - ring / 2, angle(steps[i - 1].value, min, max), angle(steps[i].value, min, max), ring, steps[i].color);
      }
    }
    if (o.threshold.label.show) {
      ctx.fillStyle = o.value.color;
      ctx.font = fontSize + 'px ' + o.value.font.family;
      ctx.textBaseline = 'middle';
      var marks = steps.map(function (s) {
        return s.value;
      });
      if (marks[marks.length - 1] !== max) {
        marks.push(max);
      }
      marks.forEach(function (v) {
        var a = angle(v, min, max);
        var c = Math.cos(a);
        ctx.textAlign = c < -0.2 ? 'right' : c > 0.2 ? 'left' : 'center';
        ctx.fillText(String(v), x + c * (outer + 6), y + Math.sin(a) * (outer + 6));
      });
    }
    var text = typeof o.value.formatter === 'function' ? o.value.formatter(value) : String(value);
    ctx.fillStyle = o.value.color;
    ctx.font = o.value.font.size + 'px ' + o.value.font.family;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(text, x, y);
    ctx.restore();
  }

  function init(plot) {
    plot.hooks.processOptions.push(function (plot, options) {
      if (!options.series.gauges.show) {
        return;
      }
      options.grid.show = false;
      options.legend.show = false;
      options.xaxis.show = false;
      options.yaxis.show = false;
      options.series.lines.show = false;
      options.series.points.show = false;
      options.series.bars.show = false;
      plot.hooks.draw.push(draw);
    });
  }

  $.plot.plugins.push({ init: init, options: defaults, name: 'gauge', version: 'blueticks' });
})(jQuery);
