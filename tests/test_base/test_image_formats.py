"""Finding the images of a data folder."""

from cnlrn_base.image_formats import image_files


def test_image_files_follow_linked_folders_once_and_skip_hidden(tmp_path):
    for name in ('a/1.png', 'b/2.jpg', '.hidden/3.png', 'a/.4.png', 'a/notes.txt'):
        (tmp_path / 'data' / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'data' / name).write_bytes(b'')
    (tmp_path / 'data' / 'linked').symlink_to(tmp_path / 'data' / 'b', target_is_directory=True)
    (tmp_path / 'data' / 'a' / 'up').symlink_to(tmp_path / 'data', target_is_directory=True)
    assert sorted(image_files(tmp_path / 'data')) == ['a/1.png', 'b/2.jpg', 'linked/2.jpg']
