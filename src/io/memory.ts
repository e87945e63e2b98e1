/** In-memory save/load helpers around tf.io.withSaveHandler / tf.io.fromMemory. */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** Saves `model` (topology + weights, and its training config if compiled) to memory. */
export async function saveToMemory(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | null = null;
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    captured = artifacts;
    return {modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts)};
  }));
  return captured!;
}

/** Loads a model from artifacts returned by saveToMemory (or any tf.io ModelArtifacts). */
export async function loadFromMemory(artifacts: tf.io.ModelArtifacts): Promise<tfl.LayersModel> {
  return tfl.loadLayersModel(tf.io.fromMemory(artifacts));
}
