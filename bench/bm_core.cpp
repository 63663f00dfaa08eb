// Micro-benchmarks of the core (Google Benchmark). Figures and the commands that made them are
// in docs/BENCHMARKS.md. Allocations are counted by replacing the global operator new.
#include <benchmark/benchmark.h>

#include <corio/corio.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

// Every trip to the allocator: operator new, plus the frame allocator's fresh blocks (the
// recycled ones are not allocations).
static std::atomic<long> g_new_calls{0};
static long allocations() { return g_new_calls.load() + long(corio::detail::frame_alloc_stats().fresh); }
void* operator new(std::size_t n) {
    g_new_calls.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
// GCC cannot see that these replace the global pair, and warns that free() meets new.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace std::chrono_literals;

namespace {

corio::Coro<long> trivial(long i) { co_return i; }

// create_task + await of a trivial coroutine, in a steady state (frames recycled).
void BM_CreateTaskAndAwait(benchmark::State& state) {
    auto body = [&]() -> corio::Coro<> {
        long sum = 0;
        long before = 0;
        long rounds = 0;
        for (auto _ : state) {
            if (rounds == 1000) before = allocations();
            auto t = corio::create_task(trivial(rounds));
            sum += co_await t;
            ++rounds;
        }
        benchmark::DoNotOptimize(sum);
        if (rounds > 1000)
            state.counters["allocs_per_task"] = double(allocations() - before) / double(rounds - 1000);
    };
    corio::run(body());
}
BENCHMARK(BM_CreateTaskAndAwait);

// One level of a deep chain of synchronously completing awaits.
corio::Coro<long> level(long depth) {
    if (depth == 0) co_return 1;
    co_return 1 + co_await level(depth - 1);
}
void BM_AwaitChainPerLevel(benchmark::State& state) {
    const long depth = state.range(0);
    auto body = [&]() -> corio::Coro<> {
        for (auto _ : state) {
            long v = co_await level(depth);
            benchmark::DoNotOptimize(v);
        }
    };
    corio::run(body());
    state.SetItemsProcessed(state.iterations() * depth);
}
BENCHMARK(BM_AwaitChainPerLevel)->Arg(1000);

// A flat loop of synchronously completing awaits (the 10^6 chain of the issue, per await).
void BM_SyncAwaitInLoop(benchmark::State& state) {
    auto body = [&]() -> corio::Coro<> {
        for (auto _ : state) {
            long v = co_await trivial(1);
            benchmark::DoNotOptimize(v);
        }
    };
    corio::run(body());
}
BENCHMARK(BM_SyncAwaitInLoop);

// One hand-off of a token through a Queue(1) to another task and back, per item.
corio::Coro<> ponger(corio::Queue<long>* in, corio::Queue<long>* out) {
    for (;;) {
        long v = co_await in->get();
        if (v < 0) co_return;
        co_await out->put(v + 1);
    }
}
void BM_QueuePingPongHandoff(benchmark::State& state) {
    auto body = [&]() -> corio::Coro<> {
        corio::Queue<long> a(1), b(1);
        auto p = corio::create_task(ponger(&a, &b));
        long tok = 0;
        for (auto _ : state) {
            co_await a.put(tok);
            tok = co_await b.get();
        }
        co_await a.put(-1);
        co_await p;
        benchmark::DoNotOptimize(tok);
    };
    corio::run(body());
    state.SetItemsProcessed(state.iterations() * 2);  // two hand-offs per round trip
}
BENCHMARK(BM_QueuePingPongHandoff);

// sleep(0): one trip through the ready queue.
void BM_YieldOneTick(benchmark::State& state) {
    auto body = [&]() -> corio::Coro<> {
        for (auto _ : state) co_await corio::sleep(0s);
    };
    corio::run(body());
}
BENCHMARK(BM_YieldOneTick);

// Bytes per pending sleeping task: heap bytes (glibc's count of bytes in use) held by N
// sleepers, each a task state plus its coroutine frame.
corio::Coro<> sleeper() { co_await corio::sleep(1h); }
void BM_AllocsPerSleepingTask(benchmark::State& state) {
    const long n = state.range(0);
    for (auto _ : state) {
        auto body = [&]() -> corio::Coro<> {
            std::vector<corio::Task<>> tasks;
            tasks.reserve(std::size_t(n));
            // Only malloc calls are counted: frames and task states come from corio's own chunks,
            // so malloc's byte counts would miss them (W3 measures the bytes, by peak RSS).
            long allocs_before = allocations();
            for (long i = 0; i < n; ++i) tasks.push_back(corio::create_task(sleeper()));
            co_await corio::sleep(0s);  // every sleeper is now parked on its timer
            state.counters["allocs_per_sleeper"] = double(allocations() - allocs_before) / double(n);
            for (auto& t : tasks) t.cancel();
            for (auto& t : tasks) {
                try {
                    co_await t;
                } catch (const corio::CancelledError&) {
                }
            }
        };
        corio::run(body());
    }
}
BENCHMARK(BM_AllocsPerSleepingTask)->Arg(100000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
