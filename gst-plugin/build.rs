// Sets COMMIT_ID and BUILD_REL_DATE for `plugin_define!` (gst-plugins-rs' helper).
fn main() {
    gst_plugin_version_helper::info()
}
