#include "ops/exposition.hpp"

#include <cmath>

#include <fmt/format.h>

namespace knp::host {

namespace {

// HELP text escapes backslash and newline; label values also escape the double quote.
void appendEscaped(std::string& out, std::string_view s, bool quote) {
    for (char c : s) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (quote && c == '"') {
            out += "\\\"";
        } else {
            out.push_back(c);
        }
    }
}

}  // namespace

bool ExpositionWriter::validName(std::string_view name) noexcept {
    if (name.empty()) return false;
    for (size_t i = 0; i < name.size(); ++i) {
        char c = name[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

std::string ExpositionWriter::formatValue(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    // Integral values print without an exponent or a fraction, like the Go client.
    if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
    return fmt::format("{}", v);
}

void ExpositionWriter::family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_.push_back(' ');
    appendEscaped(out_, help, false);
    out_ += "\n# TYPE ";
    out_ += name;
    out_.push_back(' ');
    out_ += type;
    out_.push_back('\n');
}

void ExpositionWriter::series(std::string_view name, MetricLabels labels, const MetricLabel* extra) {
    out_ += name;
    if (labels.empty() && extra == nullptr) {
        out_.push_back(' ');
        return;
    }
    out_.push_back('{');
    bool first = true;
    auto one = [&](const MetricLabel& l) {
        if (!first) out_.push_back(',');
        first = false;
        out_ += l.first;
        out_ += "=\"";
        appendEscaped(out_, l.second, true);
        out_.push_back('"');
    };
    for (const auto& l : labels) one(l);
    if (extra != nullptr) one(*extra);
    out_ += "} ";
}

void ExpositionWriter::sample(std::string_view name, MetricLabels labels, double value) {
    series(name, labels, nullptr);
    out_ += formatValue(value);
    out_.push_back('\n');
}

void ExpositionWriter::sample(std::string_view name, MetricLabels labels, uint64_t value) {
    series(name, labels, nullptr);
    out_ += fmt::format("{}\n", value);
}

void ExpositionWriter::histogram(std::string_view name, MetricLabels labels, std::span<const double> bounds,
                                 std::span<const uint64_t> buckets, double sum) {
    std::string bucket = fmt::format("{}_bucket", name);
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds.size() && i < buckets.size(); ++i) {
        cumulative += buckets[i];
        std::string le = i < bounds.size() ? formatValue(bounds[i]) : "+Inf";
        MetricLabel l{"le", le};
        series(bucket, labels, &l);
        out_ += fmt::format("{}\n", cumulative);
    }
    sample(fmt::format("{}_sum", name), labels, sum);
    sample(fmt::format("{}_count", name), labels, cumulative);
}

void ExpositionWriter::summary(std::string_view name, MetricLabels labels,
                               std::span<const std::pair<double, double>> quantiles, double sum, uint64_t count) {
    for (const auto& [q, v] : quantiles) {
        std::string qs = formatValue(q);
        MetricLabel l{"quantile", qs};
        series(name, labels, &l);
        out_ += formatValue(v);
        out_.push_back('\n');
    }
    sample(fmt::format("{}_sum", name), labels, sum);
    sample(fmt::format("{}_count", name), labels, count);
}

void MetricsRegistry::add(std::string key, Collector collector) {
    std::lock_guard lock(mutex_);
    collectors_[std::move(key)] = std::move(collector);
}

void MetricsRegistry::remove(const std::string& key) {
    std::lock_guard lock(mutex_);
    collectors_.erase(key);
}

std::string MetricsRegistry::scrape() const {
    std::lock_guard lock(mutex_);
    ExpositionWriter w;
    for (const auto& [key, collect] : collectors_) collect(w);
    return w.take();
}

}  // namespace knp::host
