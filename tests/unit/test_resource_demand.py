"""The cluster's pending demand from a CLUSTER_STATUS reply (pure)."""

from shoal.util.resource_demand import demand_from_status


def test_tasks_and_actors_are_counted_per_shape_ready_or_infeasible():
    status = {
        "nodes": [
            {"alive": True, "resources_total": {"CPU": 4.0},
             "demand": [[{"CPU": 2.0}, 3, False], [{"GPU": 1.0}, 1, True]]},
            {"alive": True, "resources_total": {"CPU": 1.0, "GPU": 1.0},
             "demand": [[{"CPU": 2.0}, 1, False]]},
            {"alive": False, "resources_total": {"CPU": 80.0}, "demand": [[{"CPU": 1}, 9, False]]},
        ],
        "pending_actors": [{"class_name": "A", "resources": {"CPU": 80}, "name": ""},
                           {"class_name": "B", "resources": {"CPU": 80}, "name": ""}],
    }
    got = {tuple(sorted(d.shape.items())): (d.num_ready_requests_queued,
                                            d.num_infeasible_requests_queued)
           for d in demand_from_status(status)}
    # a GPU request queued where no GPU is, while another node has one: ready
    assert got == {(("CPU", 2.0),): (4, 0), (("GPU", 1.0),): (1, 0), (("CPU", 80.0),): (0, 2)}


def test_no_demand_is_an_empty_list():
    assert demand_from_status({"nodes": [{"alive": True, "resources_total": {"CPU": 1}}]}) == []
