// Beyond the seeds' code (subprocesses are part of the asyncio they teach, with no example there):
// a shell pipeline, `printf ... | sort | uniq -c`, with the program itself carrying the bytes from
// one process to the next through corio pipes.
//   p1 = await asyncio.create_subprocess_exec('printf', ..., stdout=PIPE)
//   p2 = await asyncio.create_subprocess_exec('sort', stdin=PIPE, stdout=PIPE)
//   p3 = await asyncio.create_subprocess_exec('uniq', '-c', stdin=PIPE, stdout=PIPE)
//   ... pump p1.stdout -> p2.stdin and p2.stdout -> p3.stdin; out = await p3.stdout.read()
// It checks the counts, and that /bin/sh running the same pipeline agrees.
#include <corio/corio.hpp>

#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

const std::vector<std::string> kWords{"banana", "apple", "banana", "cherry", "apple", "banana", "date"};

// Copies everything from `from` to `to`, then closes `to` (the next process sees EOF).
corio::Coro<std::size_t> pump(corio::StreamReader from, corio::StreamWriter to) {
    std::size_t total = 0;
    for (;;) {
        std::string chunk = co_await from.read(65536);
        if (chunk.empty()) break;
        total += chunk.size();
        to.write(chunk);
        co_await to.drain();  // backpressure: never buffer more than the next process takes
    }
    to.close();
    co_await to.wait_closed();
    co_return total;
}

std::map<std::string, int> parse_uniq_c(const std::string& text) {
    std::map<std::string, int> counts;
    std::istringstream in(text);
    int n;
    std::string word;
    while (in >> n >> word) counts[word] = n;
    return counts;
}

corio::Coro<int> main_coro() {
    std::vector<std::string> printf_argv{"printf", "%s\\n"};
    printf_argv.insert(printf_argv.end(), kWords.begin(), kWords.end());
    std::vector<std::string> sort_argv{"sort"};
    std::vector<std::string> uniq_argv{"uniq", "-c"};

    corio::Coro<corio::Process> spawn1 = corio::create_subprocess_exec(printf_argv, {.out = corio::PIPE});
    corio::Process p1 = co_await std::move(spawn1);
    corio::Coro<corio::Process> spawn2 =
        corio::create_subprocess_exec(sort_argv, {.in = corio::PIPE, .out = corio::PIPE});
    corio::Process p2 = co_await std::move(spawn2);
    corio::Coro<corio::Process> spawn3 =
        corio::create_subprocess_exec(uniq_argv, {.in = corio::PIPE, .out = corio::PIPE});
    corio::Process p3 = co_await std::move(spawn3);
    std::printf("started printf (pid %d) | sort (pid %d) | uniq -c (pid %d)\n", p1.pid(), p2.pid(), p3.pid());

    // The two pumps and the final read run at once, as the shell's pipes would.
    corio::Task<std::size_t> first = corio::create_task(pump(p1.out(), p2.in()));
    corio::Task<std::size_t> second = corio::create_task(pump(p2.out(), p3.in()));
    std::string output = co_await p3.out().read(-1);
    std::size_t moved1 = co_await first;
    std::size_t moved2 = co_await second;
    int c1 = co_await p1.wait();
    int c2 = co_await p2.wait();
    int c3 = co_await p3.wait();
    std::printf("carried %zu bytes printf->sort and %zu bytes sort->uniq; exit codes %d %d %d\n", moved1, moved2,
                c1, c2, c3);
    std::printf("uniq -c says:\n%s", output.c_str());

    // The same pipeline run by the shell, for comparison.
    std::string command = "printf '%s\\n'";
    for (const auto& w : kWords) command += " " + w;
    command += " | sort | uniq -c";
    corio::Coro<corio::Process> spawn_sh = corio::create_subprocess_shell(command, {.out = corio::PIPE});
    corio::Process sh = co_await std::move(spawn_sh);
    corio::Coro<std::pair<std::string, std::string>> talking = sh.communicate();
    std::pair<std::string, std::string> by_shell = co_await std::move(talking);

    std::map<std::string, int> counts = parse_uniq_c(output);
    std::map<std::string, int> expected{{"apple", 2}, {"banana", 3}, {"cherry", 1}, {"date", 1}};
    bool ok = counts == expected && c1 == 0 && c2 == 0 && c3 == 0 && parse_uniq_c(by_shell.first) == expected &&
              sh.returncode() == 0;
    std::printf("%s\n", ok ? "counts are right, and /bin/sh agrees: OK" : "FAILED");
    co_return ok ? 0 : 1;
}

}  // namespace

int main() {
    try {
        return corio::run(main_coro());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "subprocess_pipeline: %s\n", e.what());
        return 1;
    }
}
