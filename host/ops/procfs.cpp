#include "ops/procfs.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace knp::host {

namespace {

std::string readSmallFile(const char* path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

template <class T>
bool parseNumber(std::string_view s, T& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
}

std::vector<std::string_view> words(std::string_view line) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
        if (j > i) out.push_back(line.substr(i, j - i));
        i = j;
    }
    return out;
}

}  // namespace

std::vector<NfqueueProcStats> parseNfqueueProc(std::string_view text) {
    std::vector<NfqueueProcStats> out;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        // queue portid waiting copy_mode copy_range queue_dropped user_dropped id_sequence 1
        auto f = words(line);
        NfqueueProcStats s;
        if (f.size() < 8 || !parseNumber(f[0], s.queue) || !parseNumber(f[1], s.portId) ||
            !parseNumber(f[2], s.waiting) || !parseNumber(f[5], s.queueDropped) || !parseNumber(f[6], s.userDropped) ||
            !parseNumber(f[7], s.idSequence))
            continue;
        out.push_back(s);
    }
    return out;
}

std::vector<NfqueueProcStats> readNfqueueProc() {
    return parseNfqueueProc(readSmallFile("/proc/net/netfilter/nfnetlink_queue"));
}

ProcessStats readProcessStats() {
    ProcessStats p;
    std::string stat = readSmallFile("/proc/self/stat");
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    size_t close = stat.rfind(')');
    if (close == std::string::npos) return p;
    auto f = words(std::string_view(stat).substr(close + 1));
    // f[0] is field 3 (state): field N is f[N - 3].
    uint64_t utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
    if (f.size() < 22 || !parseNumber(f[11], utime) || !parseNumber(f[12], stime) || !parseNumber(f[19], start) ||
        !parseNumber(f[20], vsize) || !parseNumber(f[21], rss))
        return p;
    double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    p.cpuSeconds = static_cast<double>(utime + stime) / ticks;
    p.virtualBytes = vsize;
    p.residentBytes = rss * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    std::string procStat = readSmallFile("/proc/stat");
    if (size_t b = procStat.find("\nbtime "); b != std::string::npos) {
        uint64_t btime = 0;
        std::string_view rest = std::string_view(procStat).substr(b + 7);
        if (parseNumber(rest.substr(0, rest.find('\n')), btime))
            p.startTimeSeconds = static_cast<double>(btime) + static_cast<double>(start) / ticks;
    }
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++p.openFds;
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) p.maxFds = rl.rlim_cur;
    p.ok = true;
    return p;
}

}  // namespace knp::host
