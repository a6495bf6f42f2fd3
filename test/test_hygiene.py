"""Package files a ROS 2 package carries: the license text, a changelog, one version."""
import re
import xml.etree.ElementTree as ET

from ros_harness import REPO


def test_license_file_is_the_license_package_xml_declares():
    assert ET.parse(REPO / 'package.xml').getroot().find('license').text == 'Apache-2.0'
    text = (REPO / 'LICENSE').read_text()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert 'END OF TERMS AND CONDITIONS' in text          # the full text, not a pointer


def test_changelog_releases_end_at_the_package_version():
    version = ET.parse(REPO / 'package.xml').getroot().find('version').text
    text = (REPO / 'CHANGELOG.rst').read_text()
    assert text.splitlines()[1] == 'Changelog for package leanood_ros'
    released = re.findall(r'^(\d+\.\d+\.\d+) \(\d{4}-\d\d-\d\d\)$', text, re.M)
    assert released and released[0] == version


def test_version_is_written_once():
    hits = [p for p in (REPO / 'leanood_ros').rglob('*.py')
            if re.search(r"__version__\s*=\s*['\"]", p.read_text())]
    assert hits == [], hits
