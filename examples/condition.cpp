// Seed "Condition -- wait for a predicate".
//   async with condition:
//       await condition.wait_for(lambda: len(queue) > 0)
//       item = queue.pop()
#include <corio/corio.hpp>

#include <deque>
#include <iostream>
#include <vector>

using namespace std::chrono_literals;

std::deque<int> queue;
std::vector<int> consumed;

corio::Coro<> consumer(corio::Condition* condition) {
    for (int i = 0; i < 3; ++i) {
        auto held = co_await condition->acquire();  // async with condition:
        co_await condition->wait_for([] { return !queue.empty(); });
        consumed.push_back(queue.front());
        queue.pop_front();
    }
}

corio::Coro<> producer(corio::Condition* condition) {
    for (int item = 1; item <= 3; ++item) {
        co_await corio::sleep(5ms);
        auto held = co_await condition->acquire();
        queue.push_back(item);
        condition->notify();
    }
}

corio::Coro<int> main_coro() {
    corio::Condition condition;
    co_await corio::gather(consumer(&condition), producer(&condition));
    for (int v : consumed) std::cout << "consumed " << v << "\n";
    co_return consumed == std::vector<int>{1, 2, 3} ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
