// The Prometheus exposition writer (golden text), the collector registry, and the lock-free
// per-reader counters under concurrent writers and a concurrent reader.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "ops/counters.hpp"
#include "ops/exposition.hpp"
#include "ops/procfs.hpp"
#include "plugins/instance.hpp"

using namespace knp::host;

TEST_CASE("exposition: counter and gauge families, label and help escaping") {
    ExpositionWriter w;
    w.family("knp_things_total", "counter", "Things with a \\ and a\nnewline.");
    w.sample("knp_things_total", {{"instance", "a\"b"}, {"path", "c:\\d\ne"}}, uint64_t{42});
    w.sample("knp_things_total", {}, uint64_t{0});
    w.family("knp_ratio", "gauge", "A ratio.");
    w.sample("knp_ratio", {}, 0.25);
    w.sample("knp_ratio", {{"x", "y"}}, std::nan(""));
    CHECK(w.text() ==
          "# HELP knp_things_total Things with a \\\\ and a\\nnewline.\n"
          "# TYPE knp_things_total counter\n"
          "knp_things_total{instance=\"a\\\"b\",path=\"c:\\\\d\\ne\"} 42\n"
          "knp_things_total 0\n"
          "# HELP knp_ratio A ratio.\n"
          "# TYPE knp_ratio gauge\n"
          "knp_ratio 0.25\n"
          "knp_ratio{x=\"y\"} NaN\n");
}

TEST_CASE("exposition: histogram buckets are cumulative, +Inf equals the count") {
    ExpositionWriter w;
    const double bounds[] = {1, 10, 0.005};
    const uint64_t buckets[] = {2, 0, 3, 1};
    MetricLabel labels[] = {{"protocol", "TCP"}};
    w.family("h", "histogram", "H.");
    w.histogram("h", labels, bounds, buckets, 12.5);
    CHECK(w.text() ==
          "# HELP h H.\n# TYPE h histogram\n"
          "h_bucket{protocol=\"TCP\",le=\"1\"} 2\n"
          "h_bucket{protocol=\"TCP\",le=\"10\"} 2\n"
          "h_bucket{protocol=\"TCP\",le=\"0.005\"} 5\n"
          "h_bucket{protocol=\"TCP\",le=\"+Inf\"} 6\n"
          "h_sum{protocol=\"TCP\"} 12.5\n"
          "h_count{protocol=\"TCP\"} 6\n");
}

TEST_CASE("exposition: summary quantiles, sum and count") {
    ExpositionWriter w;
    const std::pair<double, double> q[] = {{0.5, 3}, {0.99, 1e-07}};
    w.summary("s", {}, q, 4.5, 7);
    CHECK(w.text() == "s{quantile=\"0.5\"} 3\ns{quantile=\"0.99\"} 1e-07\ns_sum 4.5\ns_count 7\n");
}

TEST_CASE("exposition: value formatting and name validation") {
    CHECK(ExpositionWriter::formatValue(3) == "3");
    CHECK(ExpositionWriter::formatValue(-2) == "-2");
    CHECK(ExpositionWriter::formatValue(0.005) == "0.005");
    CHECK(ExpositionWriter::formatValue(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(ExpositionWriter::formatValue(-std::numeric_limits<double>::infinity()) == "-Inf");
    CHECK(ExpositionWriter::validName("knp_plugin_evaluations_total"));
    CHECK(ExpositionWriter::validName("a:b"));
    CHECK_FALSE(ExpositionWriter::validName("1abc"));
    CHECK_FALSE(ExpositionWriter::validName("knp_plugin_not-a-name"));
    CHECK_FALSE(ExpositionWriter::validName(""));
}

TEST_CASE("registry: collectors run in key order; remove and replace") {
    MetricsRegistry r;
    r.add("20-b", [](ExpositionWriter& w) { w.sample("b", {}, uint64_t{2}); });
    r.add("10-a", [](ExpositionWriter& w) { w.sample("a", {}, uint64_t{1}); });
    CHECK(r.scrape() == "a 1\nb 2\n");
    r.add("10-a", [](ExpositionWriter& w) { w.sample("a", {}, uint64_t{3}); });
    r.remove("20-b");
    CHECK(r.scrape() == "a 3\n");
}

TEST_CASE("counters: a histogram buckets by one value and sums another") {
    static constexpr std::array<uint64_t, 3> kBounds{1, 10, 100};
    SingleWriterHistogram<3> h;
    h.observe(kBounds, 0, 500);         // 0 µs (500 ns): le=1
    h.observe(kBounds, 1, 1999);        // le=1 (bounds are inclusive)
    h.observe(kBounds, 11, 11000);      // le=100
    h.observe(kBounds, 1000, 1000000);  // +Inf
    HistogramTotals<3> t;
    t.add(h);
    CHECK(t.buckets == std::array<uint64_t, 4>{2, 0, 1, 1});
    CHECK(t.count() == 4);
    CHECK(t.sum == 500 + 1999 + 11000 + 1000000);
}

TEST_CASE("counters: the reservoir keeps the most recent samples") {
    SingleWriterReservoir<4> r;
    std::vector<uint32_t> got;
    r.collect(got);
    CHECK(got.empty());
    for (uint32_t i = 1; i <= 6; ++i) r.record(i);
    r.collect(got);
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<uint32_t>{3, 4, 5, 6});
}

TEST_CASE("counters: per-reader slots under concurrent writers and a concurrent reader") {
    // Each writer owns one slot of an instance's statistics, as each reader thread does; a
    // scraper sums while they write. Totals never go backwards and end exact.
    auto stats = std::make_unique<InstanceStats>();
    constexpr unsigned kWriters = 4;
    constexpr uint64_t kEach = 200000;
    std::atomic<bool> done{false};
    std::vector<uint64_t> seen;
    std::thread scraper([&] {
        while (!done.load()) {
            auto t = stats->totals();
            seen.push_back(t.verdicts[0][KNP_VERDICT_ACCEPT] + t.verdicts[0][KNP_VERDICT_DENY]);
        }
    });
    std::vector<std::thread> writers;
    for (unsigned w = 0; w < kWriters; ++w)
        writers.emplace_back([&, w] {
            for (uint64_t i = 0; i < kEach; ++i)
                stats->record(w, Direction::Ingress, i % 2 ? KNP_VERDICT_ACCEPT : KNP_VERDICT_DENY,
                              i % 1000 == 0 ? EvalOutcome::PluginError : EvalOutcome::Ok, i % 3000);
        });
    for (auto& t : writers) t.join();
    done = true;
    scraper.join();
    for (size_t i = 1; i < seen.size(); ++i) CHECK_MESSAGE(seen[i] >= seen[i - 1], "totals went backwards");
    auto t = stats->totals();
    CHECK(t.verdicts[0][KNP_VERDICT_ACCEPT] == kWriters * kEach / 2);
    CHECK(t.verdicts[0][KNP_VERDICT_DENY] == kWriters * kEach / 2);
    CHECK(t.outcomes[0][static_cast<size_t>(EvalOutcome::PluginError)] == kWriters * (kEach / 1000));
    CHECK(t.time[0].count() == kWriters * kEach);
    CHECK(t.verdicts[1][KNP_VERDICT_ACCEPT] == 0);  // egress untouched
}

TEST_CASE("procfs: nfnetlink_queue lines") {
    auto q = parseNfqueueProc(
        "  100  12345     2 2   512     7     3      981 1\n"
        "  101 -4233     0 2   512     0     0        0 1\n"
        "garbage\n");
    REQUIRE(q.size() == 1);  // a negative port id (not a number here) is skipped, like garbage
    CHECK(q[0].queue == 100);
    CHECK(q[0].portId == 12345);
    CHECK(q[0].waiting == 2);
    CHECK(q[0].queueDropped == 7);
    CHECK(q[0].userDropped == 3);
    CHECK(q[0].idSequence == 981);
    CHECK(readProcessStats().ok);
}
