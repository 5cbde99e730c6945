// Prometheus text exposition (format 0.0.4) and the registry of collectors behind /metrics.
//
// A collector is a function that writes metric families into an ExpositionWriter at scrape
// time: components keep their own (lock-free) counters and only a scrape formats them, on the
// ops thread. Anyone may register a collector (the dataplane, the watch client, ...).
//
// THREAD: ExpositionWriter is single-threaded. MetricsRegistry is thread-safe; collectors run
// on the scraping thread, one scrape at a time, and must not call back into the registry.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace knp::host {

using MetricLabel = std::pair<std::string_view, std::string_view>;
using MetricLabels = std::span<const MetricLabel>;

class ExpositionWriter {
public:
    // Starts a family: its HELP and TYPE lines. `type` is counter, gauge, histogram, summary or
    // untyped. Every sample that follows belongs to it until the next family().
    void family(std::string_view name, std::string_view type, std::string_view help);

    void sample(std::string_view name, MetricLabels labels, double value);
    void sample(std::string_view name, MetricLabels labels, uint64_t value);
    void sample(std::string_view name, std::initializer_list<MetricLabel> labels, double value) {
        sample(name, MetricLabels(labels.begin(), labels.size()), value);
    }
    void sample(std::string_view name, std::initializer_list<MetricLabel> labels, uint64_t value) {
        sample(name, MetricLabels(labels.begin(), labels.size()), value);
    }

    // A family of one unlabelled sample.
    void scalar(std::string_view name, std::string_view type, std::string_view help, double value) {
        family(name, type, help);
        sample(name, {}, value);
    }

    // One histogram series: `bounds` in the exposed unit, `buckets` non-cumulative with one
    // more entry than `bounds` (the +Inf bucket), `sum` in the exposed unit.
    void histogram(std::string_view name, MetricLabels labels, std::span<const double> bounds,
                   std::span<const uint64_t> buckets, double sum);
    // One summary series: (quantile, value) pairs, then _sum and _count.
    void summary(std::string_view name, MetricLabels labels, std::span<const std::pair<double, double>> quantiles,
                 double sum, uint64_t count);

    const std::string& text() const noexcept { return out_; }
    std::string take() noexcept { return std::move(out_); }

    // Exposition helpers, public for tests and callers building names.
    static bool validName(std::string_view name) noexcept;
    static std::string formatValue(double v);

private:
    void series(std::string_view name, MetricLabels labels, const MetricLabel* extra);

    std::string out_;
};

class MetricsRegistry {
public:
    using Collector = std::function<void(ExpositionWriter&)>;

    // Registers (or replaces) the collector `key`; families are written in key order, so the
    // output is stable from scrape to scrape.
    void add(std::string key, Collector collector);
    void remove(const std::string& key);
    // Runs every collector; the Prometheus text.
    std::string scrape() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, Collector> collectors_;
};

}  // namespace knp::host
