// W3 (peers' convention): N tasks each sleeping 1 s; time above 1 s, from before the first spawn.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

using namespace std::chrono_literals;

corio::Coro<> sleeper() { co_await corio::sleep(1s); }

corio::Coro<int> run_w3(long n) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<corio::Task<>> tasks;
    tasks.reserve(std::size_t(n));
    for (long i = 0; i < n; ++i) tasks.push_back(corio::create_task(sleeper()));
    for (auto& t : tasks) co_await t;
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("RESULT w3 n=%ld wall_s=%.4f overhead_ms=%.1f\n", n, dt, (dt - 1.0) * 1e3);
    co_return 0;
}

int main(int argc, char** argv) {
    long n = argc > 1 ? std::atol(argv[1]) : 100000;
    return corio::run(run_w3(n));
}
