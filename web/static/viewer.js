// The 3D view of a fitted head: three.js, the fit's mesh.glb, OrbitControls.
//
// The GLB is in the head model's frame (metres, y up, +z toward the viewer), so the camera
// starts on +z looking at the head's centre. Frames are drawn on demand (when the view or the
// look changes), not in a loop: a software WebGL (SwiftShader) stays cheap.

import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";

const FOV_DEGREES = 30;
const LANDMARK_RADIUS_M = 0.0018;

export class HeadViewer {
  /** @param {HTMLElement} container - the element the canvas fills (square). */
  constructor(container) {
    this.container = container;
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.renderer.setClearColor(0xe9ebf0, 1);
    container.appendChild(this.renderer.domElement);

    this.scene = new THREE.Scene();
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x8a8070, 1.6));
    this.key = new THREE.DirectionalLight(0xffffff, 1.6);
    this.scene.add(this.key);

    this.camera = new THREE.PerspectiveCamera(FOV_DEGREES, 1, 0.01, 10);
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.addEventListener("change", () => this.render());
    this.head = null;
    this.textured = new Map();
    this.shapeMaterial = new THREE.MeshStandardMaterial({ color: 0xc8c8c8, roughness: 0.55, metalness: 0 });
    this.landmarks = null;
    this.home = null;

    new ResizeObserver(() => this.resize()).observe(container);
    this.resize();
  }

  resize() {
    const width = Math.max(1, this.container.clientWidth);
    const height = Math.max(1, this.container.clientHeight);
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
    this.render();
  }

  /**
   * Show the head of a GLB.
   * @param {string} url - the mesh.glb.
   * @param {number[][]} landmarks - (N, 3) fitted landmarks in the GLB's frame, metres.
   */
  async load(url, landmarks) {
    const gltf = await new GLTFLoader().loadAsync(url);
    if (this.head) this.scene.remove(this.head);
    this.head = gltf.scene;
    this.textured.clear();
    this.head.traverse((node) => {
      if (node.isMesh) this.textured.set(node, node.material);
    });
    this.scene.add(this.head);
    this.setLandmarks(landmarks || []);
    this.frame();
    this.container.dataset.ready = "1";
  }

  setLandmarks(points) {
    if (this.landmarks) this.scene.remove(this.landmarks);
    const sphere = new THREE.SphereGeometry(LANDMARK_RADIUS_M, 8, 6);
    const material = new THREE.MeshBasicMaterial({ color: 0xe0281e });
    this.landmarks = new THREE.InstancedMesh(sphere, material, Math.max(points.length, 1));
    this.landmarks.count = points.length;
    const matrix = new THREE.Matrix4();
    points.forEach((p, i) => this.landmarks.setMatrixAt(i, matrix.makeTranslation(p[0], p[1], p[2])));
    this.landmarks.visible = false;
    this.scene.add(this.landmarks);
  }

  /** Put the camera in front of the head (+z), the whole head in view; remembered for reset. */
  frame() {
    const box = new THREE.Box3().setFromObject(this.head);
    const size = box.getSize(new THREE.Vector3());
    const center = box.getCenter(new THREE.Vector3());
    // the box's front face fills the view with a 6 % margin
    const tan = Math.tan(THREE.MathUtils.degToRad(FOV_DEGREES / 2));
    const distance = 1.06 * Math.max(size.y / (2 * tan), size.x / (2 * tan * this.camera.aspect)) + size.z / 2;
    this.camera.near = distance / 100;
    this.camera.far = distance * 10;
    this.camera.position.set(center.x, center.y, center.z + distance);
    this.camera.updateProjectionMatrix();
    this.controls.target.copy(center);
    this.controls.minDistance = size.length() * 0.25;
    this.controls.maxDistance = distance * 4;
    this.controls.update();
    this.controls.saveState();
    this.home = true;
    this.render();
  }

  resetView() {
    if (this.home) this.controls.reset();
    this.render();
  }

  /** @param {"texture"|"shape"} look */
  setLook(look) {
    for (const [mesh, material] of this.textured) {
      mesh.material = look === "shape" ? this.shapeMaterial : material;
    }
    this.render();
  }

  showLandmarks(visible) {
    if (this.landmarks) this.landmarks.visible = visible;
    this.render();
  }

  render() {
    if (!this.renderer) return;
    // the key light follows the camera (from above and to the left of it)
    const offset = new THREE.Vector3(-0.4, 0.5, 1).applyQuaternion(this.camera.quaternion);
    this.key.position.copy(this.camera.position).add(offset);
    this.key.target.position.copy(this.controls ? this.controls.target : new THREE.Vector3());
    this.key.target.updateMatrixWorld();
    this.renderer.render(this.scene, this.camera);
  }
}
