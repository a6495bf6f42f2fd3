from leanood_ros.stats import SequenceGaps


def test_sequence_gaps_per_publisher():
    g = SequenceGaps()
    assert g.add(None, None) == 0 and not g.counting   # the rmw gives no numbers
    assert [g.add('a', n) for n in (5, 6, 9)] == [0, 0, 2]
    assert [g.add('b', n) for n in (1, 2)] == [0, 0]
    assert g.add('a', 10) == 0 and g.add('a', 10) == 0   # a repeat loses nothing
    assert g.add('a', 1) == 0 and g.add('a', 3) == 1     # restarted publisher
    assert g.lost == 3 and g.counting and g.named


def test_sequence_gaps_remember_the_newest_publishers_only():
    g = SequenceGaps()
    for p in range(SequenceGaps.MAX_PUBLISHERS + 10):
        g.add(p, 1)
    g.add(SequenceGaps.MAX_PUBLISHERS + 9, 3)   # newest: still known
    g.add(0, 5)                                  # forgotten: a fresh start, nothing counted
    assert g.lost == 1 and len(g._last) == SequenceGaps.MAX_PUBLISHERS
