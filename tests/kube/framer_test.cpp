// The newline framer across arbitrary HTTP chunk boundaries.
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kube/framer.hpp"

using knp::host::kube::LineFramer;

namespace {

std::vector<std::string> feedChunks(LineFramer& f, const std::string& stream, const std::vector<size_t>& cuts) {
    std::vector<std::string> lines;
    size_t at = 0;
    auto take = [&](std::string_view line) {
        lines.emplace_back(line);
        return true;
    };
    for (size_t cut : cuts) {
        REQUIRE(f.feed(std::string_view(stream).substr(at, cut - at), take).ok());
        at = cut;
    }
    REQUIRE(f.feed(std::string_view(stream).substr(at), take).ok());
    return lines;
}

const std::vector<std::string> kEvents = {
    R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","namespace":"ns"}}})",
    R"({"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"b","labels":{"k":"v\u00e9 ✓"}}}})",
    R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"42"}}})",
    R"({"type":"DELETED","object":{"kind":"Pod","metadata":{"name":"c"}}})",
};

std::string join(const std::vector<std::string>& lines) {
    std::string s;
    for (const auto& l : lines) s += l + "\n";
    return s;
}

}  // namespace

TEST_CASE("framer: every single split point") {
    std::string stream = join(kEvents);
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
        LineFramer f;
        CHECK(feedChunks(f, stream, {cut}) == kEvents);
        CHECK(f.pending() == 0);
    }
}

TEST_CASE("framer: one byte per chunk") {
    std::string stream = join(kEvents);
    std::vector<size_t> cuts;
    for (size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
    LineFramer f;
    CHECK(feedChunks(f, stream, cuts) == kEvents);
}

TEST_CASE("framer: random chunkings, several events per chunk") {
    std::string stream;
    std::vector<std::string> expected;
    for (int i = 0; i < 200; ++i) {
        expected.push_back(kEvents[i % kEvents.size()]);
        stream += expected.back() + "\n";
    }
    std::mt19937 rng(7);
    for (int round = 0; round < 50; ++round) {
        std::vector<size_t> cuts;
        size_t at = 0;
        while (true) {
            at += std::uniform_int_distribution<size_t>(1, 400)(rng);
            if (at >= stream.size()) break;
            cuts.push_back(at);
        }
        LineFramer f;
        CHECK(feedChunks(f, stream, cuts) == expected);
    }
}

TEST_CASE("framer: a giant object across many chunks") {
    std::string big =
        R"({"type":"ADDED","object":{"metadata":{"name":"big"},"data":")" + std::string(10 << 20, 'x') + R"("}})";
    std::string stream = kEvents[0] + "\n" + big + "\n" + kEvents[1] + "\n";
    std::vector<size_t> cuts;
    for (size_t at = 16 * 1024 - 5; at < stream.size(); at += 16 * 1024) cuts.push_back(at);
    LineFramer f;
    auto lines = feedChunks(f, stream, cuts);
    REQUIRE(lines.size() == 3);
    CHECK(lines[1] == big);
    CHECK(lines[2] == kEvents[1]);
}

TEST_CASE("framer: CRLF, blank lines, a partial tail, and the size limit") {
    LineFramer f;
    std::vector<std::string> lines;
    auto take = [&](std::string_view l) {
        lines.emplace_back(l);
        return true;
    };
    REQUIRE(f.feed("one\r\n\n\ntwo\nthr", take).ok());
    CHECK(lines == std::vector<std::string>{"one", "two"});
    CHECK(f.pending() == 3);  // a cut stream ends here: the partial event is never delivered
    f.reset();
    CHECK(f.pending() == 0);

    LineFramer small(8);
    CHECK(small.feed("12345678\n", take).ok());
    CHECK_FALSE(small.feed("123456789\n", take).ok());
    CHECK(small.feed("12345", take).ok());
    CHECK_FALSE(small.feed("6789", take).ok());
    CHECK(small.pending() == 0);
}

TEST_CASE("framer: the callback can stop early") {
    LineFramer f;
    int n = 0;
    REQUIRE(f.feed("a\nb\nc\n", [&](std::string_view) { return ++n < 2; }).ok());
    CHECK(n == 2);
}
