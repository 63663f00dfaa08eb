// Producer/consumer through a bounded Queue, with workers in a TaskGroup.
#include <corio/corio.hpp>

#include <iostream>
#include <numeric>
#include <string>
#include <vector>

using namespace std::chrono_literals;

// [producer-consumer]
corio::Coro<> producer(corio::Queue<int>* queue) {
    for (int i = 0; i < 10; ++i) co_await queue->put(i);  // waits while the queue is full
}

corio::Coro<> worker(corio::Queue<int>* queue, std::vector<int>* results) {
    for (;;) {
        int item = co_await queue->get();
        co_await corio::sleep(1ms);  // the work
        results->push_back(item * 2);
        queue->task_done();
    }
}

corio::Coro<std::vector<int>> fan_out() {
    corio::Queue<int> queue(3);  // asyncio.Queue(maxsize=3)
    std::vector<int> results;
    co_await corio::task_group([&](corio::TaskGroup& tg) -> corio::Coro<> {
        std::vector<corio::Task<>> workers;
        for (int i = 0; i < 3; ++i) workers.push_back(tg.create_task(worker(&queue, &results)));
        co_await producer(&queue);
        co_await queue.join();  // every item taken *and* marked task_done()
        for (auto& w : workers) w.cancel();
    });
    co_return results;
}
// [end producer-consumer]

corio::Coro<int> main_coro() {
    std::vector<int> results = co_await fan_out();
    int sum = std::accumulate(results.begin(), results.end(), 0);
    std::cout << results.size() << " results, sum " << sum << '\n';
    co_return results.size() == 10 && sum == 90 ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
