// The report's SVG charts: lines with bands, and grouped bars with error bars.
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "evoopt/report/parts.hpp"

namespace evoopt::report {

namespace {

const std::vector<std::string> kColors = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                          "#e377c2", "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#637939"};

}  // namespace

std::string color(std::size_t i) { return kColors[i % kColors.size()]; }

// About five round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step) t.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);
  return t;
}

std::string tick_label(double v) { return fmt::format("{:g}", std::abs(v) < 1e-12 ? 0.0 : v); }

namespace {

// A chart's plot area (w × h pixels less the margins) and the data range [x0, x1] × [y0, y1]
// it shows; px and py map data coordinates to SVG ones.
struct Frame {
  double x0, x1, y0, y1;
  int w = 660, h = 300, left = 60, right = 190, top = 30, bottom = 45;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (w - left - right); }
  double py(double y) const { return top + (1 - (y - y0) / (y1 - y0)) * (h - top - bottom); }
};

std::string axes(const Frame& f, const std::string& title, const std::string& xlabel, const std::string& ylabel, bool integer_x) {
  std::string s = fmt::format("<text x=\"{}\" y=\"18\" class=\"title\">{}</text>", f.left, esc(title));
  for (double v : ticks(f.y0, f.y1)) {
    if (v < f.y0 - 1e-12 || v > f.y1 + 1e-12) continue;
    s += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"grid\"/>", f.px(f.x0), f.px(f.x1), f.py(v), f.py(v));
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" class=\"ytick\">{}</text>", f.left - 6.0, f.py(v) + 4, tick_label(v));
  }
  for (double v : ticks(f.x0, f.x1)) {
    if (v < f.x0 - 1e-12 || v > f.x1 + 1e-12 || (integer_x && std::abs(v - std::round(v)) > 1e-9)) continue;
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" class=\"xtick\">{}</text>", f.px(v), f.h - f.bottom + 16, tick_label(v));
  }
  s += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"axis\"/>", f.left, f.w - f.right, f.py(f.y0), f.py(f.y0));
  s += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{:.1f}\" class=\"axis\"/>", f.left, f.left, f.top, f.py(f.y0));
  s += fmt::format("<text x=\"{}\" y=\"{}\" class=\"xlabel\">{}</text>", (f.left + f.w - f.right) / 2, f.h - 6, esc(xlabel));
  s += fmt::format("<text transform=\"translate(14,{}) rotate(-90)\" class=\"ylabel\">{}</text>", (f.top + f.h - f.bottom) / 2, esc(ylabel));
  return s;
}

// line_chart's frame: the finite points' x range and the y range of the points and bands
// (padded by 5% unless `yrange` fixes it); none when no point is finite.
std::optional<Frame> line_frame(const std::vector<Series>& series, const std::vector<Band>& bands, std::optional<std::pair<double, double>> yrange) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  std::size_t n = 0;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
      ++n;
    }
  for (const auto& b : bands)
    for (std::size_t i = 0; i < b.x.size(); ++i) {
      y0 = std::min(y0, b.lo[i]);
      y1 = std::max(y1, b.hi[i]);
    }
  if (n == 0) return std::nullopt;
  if (yrange) std::tie(y0, y1) = *yrange;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) {
    y0 -= 0.5;
    y1 += 0.5;
  } else if (!yrange) {
    const double pad = 0.05 * (y1 - y0);
    y0 -= pad;
    y1 += pad;
  }
  return Frame{x0, x1, y0, y1};
}

}  // namespace

std::string line_chart(const std::string& id, const std::string& title, const std::string& xlabel, const std::string& ylabel,
                       const std::vector<Series>& series, const std::vector<Band>& bands, std::optional<std::pair<double, double>> yrange,
                       bool integer_x) {
  const std::optional<Frame> frame = line_frame(series, bands, yrange);
  if (!frame) return "<p class=\"note\">" + esc(title) + ": no data yet.</p>";
  const Frame& f = *frame;
  const double y0 = f.y0, y1 = f.y1;
  std::string body = axes(f, title, xlabel, ylabel, integer_x);
  std::size_t marks = 0, k = 0;
  for (const auto& b : bands) {
    std::string pts;
    for (std::size_t i = 0; i < b.x.size(); ++i) pts += fmt::format("{:.1f},{:.1f} ", f.px(b.x[i]), f.py(std::clamp(b.hi[i], y0, y1)));
    for (std::size_t i = b.x.size(); i-- > 0;) pts += fmt::format("{:.1f},{:.1f} ", f.px(b.x[i]), f.py(std::clamp(b.lo[i], y0, y1)));
    body += fmt::format("<polygon points=\"{}\" class=\"band\"><title>{}</title></polygon>", pts, esc(b.name));
  }
  std::string legend;
  for (const auto& s : series) {
    const std::string c = color(k);
    std::string pts, dots;
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      const double yy = std::clamp(y, y0, y1);
      pts += fmt::format("{:.1f},{:.1f} ", f.px(x), f.py(yy));
      if (s.marks) {
        dots += fmt::format(
            "<circle class=\"pt\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.6\" fill=\"{}\" data-x=\"{:g}\" data-y=\"{:g}\"><title>{}: {:g}, "
            "{:.4g}</title></circle>",
            f.px(x), f.py(yy), c, x, y, esc(s.name), x, y);
        ++marks;
      }
    }
    body += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{}/>", pts, c,
                        s.dashed ? " stroke-dasharray=\"5,3\"" : "");
    body += dots;
    legend += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"{}/><text x=\"{}\" y=\"{}\" class=\"legend\">{}</text>",
        f.w - f.right + 10, f.w - f.right + 28, f.top + 8 + 16 * k, f.top + 8 + 16 * k, c, s.dashed ? " stroke-dasharray=\"5,3\"" : "",
        f.w - f.right + 32, f.top + 12 + 16 * k, esc(s.name));
    ++k;
  }
  if (!bands.empty())
    legend += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"18\" height=\"8\" class=\"band\"/><text x=\"{}\" y=\"{}\" class=\"legend\">{}</text>",
                          f.w - f.right + 10, f.top + 4 + 16 * k, f.w - f.right + 32, f.top + 12 + 16 * k, esc(bands.front().name));
  // Dense curves without marks: the points are still counted, as the curve's vertices.
  std::size_t points = marks;
  for (const auto& s : series)
    if (!s.marks) {
      body += fmt::format("<g class=\"pts\" data-series=\"{}\">", esc(s.name));
      for (const auto& [x, y] : s.points)
        if (std::isfinite(y)) {
          body += fmt::format("<circle class=\"pt\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"0\"/>", f.px(x), f.py(std::clamp(y, y0, y1)));
          ++points;
        }
      body += "</g>";
    }
  return fmt::format(
      "<svg class=\"chart\" data-chart=\"{}\" data-points=\"{}\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"{}\">{}{}</svg>",
      id, points, f.w, f.h, f.w, f.h, esc(title), body, legend);
}

std::string bar_chart(const std::string& id, const std::string& title, const std::string& ylabel, const std::vector<std::string>& groups,
                      const std::vector<std::string>& methods, const std::vector<std::vector<BarValue>>& v) {
  double y0 = 1e300, y1 = -1e300;
  std::size_t n = 0;
  for (const auto& row : v)
    for (const auto& b : row)
      if (b.present) {
        y0 = std::min(y0, b.value - b.half);
        y1 = std::max(y1, b.value + b.half);
        ++n;
      }
  if (n == 0) return "<p class=\"note\">" + esc(title) + ": no data yet.</p>";
  const double pad = std::max(0.02, 0.1 * (y1 - y0));
  y0 = std::max(0.0, y0 - pad);
  y1 = std::min(1.0, y1 + pad);
  if (y1 <= y0) y1 = y0 + 0.1;
  Frame f{0, static_cast<double>(groups.size()), y0, y1};
  f.w = std::max(660, static_cast<int>(groups.size() * std::max<std::size_t>(130, methods.size() * 18 + 40)) + f.left + f.right);
  std::string body = fmt::format("<text x=\"{}\" y=\"18\" class=\"title\">{}</text>", f.left, esc(title));
  for (double t : ticks(y0, y1)) {
    if (t < y0 || t > y1) continue;
    body += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"grid\"/><text x=\"{:.1f}\" y=\"{:.1f}\" class=\"ytick\">{}</text>",
        f.px(0), f.px(f.x1), f.py(t), f.py(t), f.left - 6.0, f.py(t) + 4, tick_label(t));
  }
  body += fmt::format("<text transform=\"translate(14,{}) rotate(-90)\" class=\"ylabel\">{}</text>", (f.top + f.h - f.bottom) / 2, esc(ylabel));
  const double group_w = f.px(1) - f.px(0);
  const double bar_w = std::min(22.0, (group_w - 16) / static_cast<double>(std::max<std::size_t>(1, methods.size())));
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const double gx = f.px(static_cast<double>(g)) + (group_w - bar_w * static_cast<double>(methods.size())) / 2;
    body += fmt::format("<text x=\"{:.1f}\" y=\"{}\" class=\"xtick\">{}</text>", f.px(g + 0.5), f.h - f.bottom + 16, esc(groups[g]));
    for (std::size_t m = 0; m < methods.size(); ++m) {
      const BarValue& b = v[g][m];
      if (!b.present) continue;
      const double x = gx + bar_w * static_cast<double>(m);
      const double top = f.py(std::clamp(b.value, y0, y1));
      body += fmt::format(
          "<rect class=\"pt\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" data-group=\"{}\" data-method=\"{}\" "
          "data-y=\"{:g}\" "
          "data-ci=\"{:g}\"><title>{} / {}: {:.4f} ± {:.4f} (95% CI of the mean)</title></rect>",
          x + 1, top, bar_w - 2, f.py(y0) - top, color(m), esc(groups[g]), esc(methods[m]), b.value, b.half, esc(methods[m]), esc(groups[g]), b.value,
          b.half);
      const double cx = x + bar_w / 2;
      body += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"err\"/>", cx, cx,
                          f.py(std::clamp(b.value - b.half, y0, y1)), f.py(std::clamp(b.value + b.half, y0, y1)));
      for (double e : {b.value - b.half, b.value + b.half})
        body += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"err\"/>", cx - 3, cx + 3,
                            f.py(std::clamp(e, y0, y1)), f.py(std::clamp(e, y0, y1)));
    }
  }
  std::string legend;
  for (std::size_t m = 0; m < methods.size(); ++m)
    legend += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" class=\"legend\">{}</text>",
                          f.w - f.right + 10, f.top + 16 * m, color(m), f.w - f.right + 26, f.top + 9 + 16 * m, esc(methods[m]));
  return fmt::format(
      "<svg class=\"chart\" data-chart=\"{}\" data-points=\"{}\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"{}\">{}{}</svg>",
      id, n, f.w, f.h, f.w, f.h, esc(title), body, legend);
}

}  // namespace evoopt::report
